"""`/api/ws`, seed 004's live socket: one socket follows threads, agents, runs, guilds and organisations.

Every frame both ways is the v1 envelope (guilds.sockets.envelope). The client sends `subscribe` and
`unsubscribe` ({"topics": [...]}) and `pong`; the server answers each topic with `subscribe_ack` or
`subscribe_error` (the reason: not_found, forbidden, invalid_topic, too_many_topics) and `unsubscribe_ack`,
sends `ping` every GUILDSITE_WS_PING_SECONDS, an `error` for a frame it cannot take (the socket stays open),
and the events of guilds.runtime.live. Close codes (README "Live socket"): 4401 no or bad credentials, or
they ended; 4408 no pong within GUILDSITE_WS_PONG_TIMEOUT_SECONDS of a ping; 4429 too slow to read; 1008 too
many sockets for this user.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from typing import Any

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncWebsocketConsumer
from django.conf import settings

from guilds.runtime import live
from guilds.runtime import loop as runtime_loop
from guilds.sockets import cap, frames, live_topics
from guilds.sockets.envelope import SYSTEM_TOPIC, VERSION, envelope
from guilds.sockets.flow import write_flow
from guilds.sockets.live_hub import LiveHub, live_hub
from guilds.sockets.recheck import rights_checks
from guilds.sockets.throttle import TokenBucket
from guildsite import permissions
from guildsite.identity import Actor, resolve_socket_actor
from messaging.message import Message

logger = logging.getLogger(__name__)

CLOSE_NOT_AUTHENTICATED = 4401
CLOSE_HEARTBEAT_TIMEOUT = 4408
CLOSE_TOO_SLOW = 4429
CLOSE_POLICY = 1008

CLIENT_TYPES = ("subscribe", "unsubscribe", "pong", "ping")
HEARTBEAT_TIMEOUT = "HEARTBEAT_TIMEOUT"
CLOSE_FLUSH_SECONDS = 2.0
RIGHTS_FRESH_SECONDS = 1.0
TOPIC_CHECKS_AT_LEAST = 100


class LiveSocketConsumer(AsyncWebsocketConsumer):
    channel_layer_alias = "guildsite-sockets-use-the-bus"  # events come from the live hub, not the channel layer

    async def connect(self) -> None:
        self.loop = asyncio.get_running_loop()
        self.followed: set[str] = set()
        self.counted: str | None = None
        self.closing = False  # nothing more is sent (closed, or closing)
        self.draining = False  # closing after the frame that says why: no more events
        self.tasks: list[asyncio.Task] = []
        # Which organisations' events this socket's user may see, and whose budgets (None: all): refreshed with
        # its rights (an API key's user follows their own topic, but only their key's organisation's runs show).
        self.visible_orgs: frozenset[str] | None = frozenset()
        self.budget_orgs: frozenset[str] | None = frozenset()
        self.rights_read_at = 0.0
        self.hub: LiveHub | None = None
        self.actor: Actor = self.scope["actor"]
        await self.accept()  # before any refusal: a close before accept reaches a browser as 1006
        why = self.scope.get("auth_error")
        if why or not (self.actor.is_authenticated or self.actor.development):
            await self._refuse(CLOSE_NOT_AUTHENTICATED, frames.UNAUTHENTICATED,
                               why or "no credentials: connect with ?token=<access token or API key>")
            return
        if self.actor.is_authenticated:
            socket_id = uuid.uuid4().hex
            if not await cap.acquire(self.actor.username, socket_id):
                await self._refuse(CLOSE_POLICY, frames.TOO_MANY_SOCKETS,
                                   f"{self.actor.username} has {settings.GUILDSITE_WS_MAX_PER_USER} sockets open "
                                   f"already: close one first")
                return
            self.counted = socket_id
        self.outbox: asyncio.Queue[bytes] = asyncio.Queue(maxsize=settings.GUILDSITE_WS_OUTBOX_LIMIT)
        self.outbox_bytes = 0
        self.flow = write_flow(self.scope)
        self.bucket = TokenBucket(settings.GUILDSITE_WS_RATE_PER_SECOND, settings.GUILDSITE_WS_RATE_BURST)
        # Topics checked (each a database read or two): the cap's worth at once, then a tenth of that a second.
        burst = max(settings.GUILDSITE_WS_MAX_TOPICS, TOPIC_CHECKS_AT_LEAST)
        self.checks = TokenBucket(burst / 10, burst)
        self.ponged = asyncio.Event()
        self.hub = await runtime_loop.arun(live_hub())
        self.tasks = [asyncio.ensure_future(self._pump()), asyncio.ensure_future(self._heartbeat()),
                      asyncio.ensure_future(self._keep_checking())]
        try:
            await database_sync_to_async(self._read_rights)()
            if self.actor.username:  # the caller's own topic, joined for them (development without a user: none)
                await self._subscribe([live.user_topic(self.actor.username)], request_id=None)
        except Exception:
            logger.exception("opening a live socket failed")
            await self._refuse(1011, frames.UNAVAILABLE, "the live events are unavailable; try again")

    async def _refuse(self, code: int, error_type: str, message: str) -> None:
        await self.send(text_data=envelope("error", SYSTEM_TOPIC, {"code": error_type, "message": message}).decode())
        await self.close(code=code)

    async def disconnect(self, code: int) -> None:
        self.closing = True
        for task in self.tasks:
            task.cancel()
        await asyncio.shield(self._clean_up())  # a server done waiting for this socket must not cut it short

    async def _clean_up(self) -> None:
        if self.counted is not None:
            counted, self.counted = self.counted, None
            try:
                await cap.release(self.actor.username, counted)
            except Exception:  # no longer renewed: it stops counting when its lease lapses
                logger.exception("could not uncount a closed live socket")
        if self.hub is not None and self.followed:
            followed, self.followed = list(self.followed), set()
            try:
                await runtime_loop.arun(self.hub.unfollow(followed, self))
            except Exception:
                logger.exception("live socket clean-up failed")

    # --- frames out ---------------------------------------------------------------------
    def take(self, frame: bytes, event: Message) -> None:
        """An event's frame from the hub (on the runtime loop)."""
        if self.closing or self.draining or not self._may_see(event):
            return
        if runtime_loop.in_loop(self.loop):
            self._queue(frame)
        else:
            self.loop.call_soon_threadsafe(self._queue, frame)

    def _may_see(self, event: Message) -> bool:
        """The topic was checked when followed; its events are also checked against who reads them: a run on the
        user's topic from an organisation their key does not reach, a budget for someone who is not its admin."""
        organization_id = event.payload.get("organization_id")
        if organization_id is None:
            return True
        orgs = self.budget_orgs if event.format == live.BUDGET_WARNING else self.visible_orgs
        return orgs is None or organization_id in orgs

    def _queue(self, frame: bytes) -> None:
        if self.closing:
            return
        # As the guild sockets: the byte bound is on frames waiting while the client's write buffer is full.
        client_behind = self.flow is not None and self.flow.paused
        if (self.outbox.full() or (client_behind and self.outbox_bytes > 0 and
                                   self.outbox_bytes + len(frame) > settings.GUILDSITE_WS_OUTBOX_MAX_BYTES)):
            logger.warning("live socket too slow, closing it (%d frames, %d bytes waiting)", self.outbox.qsize(),
                           self.outbox_bytes, extra={"user_id": self.actor.username})
            self.closing = True
            self.tasks.append(asyncio.ensure_future(self.close(code=CLOSE_TOO_SLOW)))
            return
        self.outbox.put_nowait(frame)
        self.outbox_bytes += len(frame)

    async def _pump(self) -> None:
        while True:
            frame = await self.outbox.get()
            try:
                if self.flow is not None:
                    await self.flow.room()
                if not self.closing:
                    await self.send(text_data=frame.decode())
            except Exception:
                logger.exception("relay to live socket failed")
            finally:
                self.outbox_bytes -= len(frame)
                self.outbox.task_done()

    def _reply(self, type_: str, topic: str, data: dict[str, Any]) -> None:
        self._queue(envelope(type_, topic, data))

    def _error(self, code: str, message: str, request_id: str | None) -> None:
        self._reply("error", SYSTEM_TOPIC, {"code": code, "message": message, "request_id": request_id})

    # --- heartbeat and rights -----------------------------------------------------------------
    async def _heartbeat(self) -> None:
        """A ping every GUILDSITE_WS_PING_SECONDS; no pong within GUILDSITE_WS_PONG_TIMEOUT_SECONDS: closed 4408."""
        while True:
            await asyncio.sleep(settings.GUILDSITE_WS_PING_SECONDS)
            self.ponged.clear()
            self._reply("ping", SYSTEM_TOPIC, {})
            if self.flow is not None:  # the time to answer starts when the ping can be on its way
                await self.flow.room()
            try:
                async with asyncio.timeout(settings.GUILDSITE_WS_PONG_TIMEOUT_SECONDS):
                    await self.ponged.wait()
            except TimeoutError:
                logger.info("live socket closed: no pong", extra={"user_id": self.actor.username})
                self._error(HEARTBEAT_TIMEOUT, f"no pong within {settings.GUILDSITE_WS_PONG_TIMEOUT_SECONDS:g} s "
                                               f"of a ping", None)
                await self._close_after_outbox(CLOSE_HEARTBEAT_TIMEOUT)
                return

    async def _close_after_outbox(self, code: int) -> None:
        """Close once what is queued (the frame saying why) is sent, or a client that does not read has had
        its chance; no events meanwhile."""
        self.draining = True
        try:
            async with asyncio.timeout(CLOSE_FLUSH_SECONDS):
                await self.outbox.join()
        except TimeoutError:
            pass
        self.closing = True
        await self.close(code=code)

    async def _keep_checking(self) -> None:
        """Rights can end while a socket is open (a token expires, a key is revoked, a member leaves): the
        credential and every followed topic are checked again every GUILDSITE_WS_RECHECK_SECONDS and when the
        credential expires. A topic no longer visible is dropped with a subscribe_error."""
        async for _ in rights_checks(lambda: self.actor):
            try:
                actor, why = await database_sync_to_async(resolve_socket_actor)(self.scope)
                if why or not (actor.is_authenticated or actor.development) or actor.username != self.actor.username:
                    self._error(frames.UNAUTHENTICATED, why or "no longer signed in", None)
                    await self._close_after_outbox(CLOSE_NOT_AUTHENTICATED)
                    return
                self.actor = actor
                await database_sync_to_async(self._read_rights)()
                refused = await database_sync_to_async(self._refused)(sorted(self.followed))
                if refused:
                    self.followed.difference_update(refused)
                    await runtime_loop.arun(self.hub.unfollow(list(refused), self))
                    for topic, problem in refused.items():
                        self._reply("subscribe_error", topic, {"topic": topic, "reason": problem.reason,
                                                               "message": f"no longer followed: {problem}",
                                                               "request_id": None})
            except Exception:
                logger.exception("checking a live socket's rights failed; trying again")

    def _read_rights(self) -> None:
        """The organisations whose events and budgets this socket's user sees, read afresh (blocking)."""
        self.actor.memo.clear()
        self.visible_orgs = permissions.visible_organization_ids(self.actor)
        self.budget_orgs = permissions.budget_organization_ids(self.actor)
        self.rights_read_at = time.monotonic()

    def _refused(self, topics: list[str]) -> dict[str, live_topics.TopicRefused]:
        """The topics `self.actor` may not follow, each with why (blocking). Rights read within the last second
        are used again: a burst of subscribes costs one read of them."""
        if time.monotonic() - self.rights_read_at > RIGHTS_FRESH_SECONDS:
            self._read_rights()
        refused = {}
        for topic in topics:
            try:
                live_topics.authorise(self.actor, topic)
            except live_topics.TopicRefused as problem:
                refused[topic] = problem
        return refused

    # --- frames in ------------------------------------------------------------------------
    async def dispatch(self, message: dict) -> None:
        # Channels closes stale database connections before every event; a frame mostly uses none.
        if message["type"] == "websocket.receive":
            await self.websocket_receive(message)
        else:
            await super().dispatch(message)

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        if self.hub is None or self.closing:
            return
        request_id = None
        try:
            within_rate = self.bucket.take()  # every frame counts, a malformed one too
            frame = frames.decode(text_data, bytes_data, max_bytes=settings.GUILDSITE_WS_FRAME_MAX_BYTES,
                                  shape="a v1 envelope: a JSON object with 'v', 'type' and 'data'")
            raw_id = frame.get("id")
            request_id = raw_id[:128] if isinstance(raw_id, str) else None
            if not within_rate:
                raise frames.FrameError(frames.RATE_LIMITED,
                                        f"too many frames: at most {settings.GUILDSITE_WS_RATE_PER_SECOND:g}/s "
                                        f"(bursts of {settings.GUILDSITE_WS_RATE_BURST}); this frame was not taken")
            type_, data = self._parse(frame)
            if type_ == "pong":
                self.ponged.set()
            elif type_ == "ping":
                self._reply("pong", SYSTEM_TOPIC, {"request_id": request_id})
            elif type_ == "subscribe":
                await self._subscribe(self._topics_of(data), request_id=request_id)
            else:
                await self._unsubscribe(self._topics_of(data), request_id=request_id)
        except frames.FrameError as exc:
            self._error(exc.error_type, str(exc), request_id)
        except Exception:  # a database or Redis failure: said, and the socket goes on
            logger.exception("a live socket's frame failed")
            self._error(frames.UNAVAILABLE, "the live events are unavailable just now; try again", request_id)

    @staticmethod
    def _parse(frame: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        if frame.get("v", VERSION) != VERSION:
            raise frames.FrameError(frames.INVALID_FRAME, f"unknown envelope version {frame.get('v')!r}: this is v1")
        type_ = frame.get("type")
        if type_ not in CLIENT_TYPES:
            raise frames.FrameError(frames.UNKNOWN_FORMAT, f"unknown type {type_!r}: a client sends "
                                                           f"{', '.join(CLIENT_TYPES)}")
        data = frame.get("data", {})
        if not isinstance(data, dict):
            raise frames.FrameError(frames.INVALID_FRAME, "'data' must be a JSON object")
        return type_, data

    @staticmethod
    def _topics_of(data: dict[str, Any]) -> list[str]:
        topics = data.get("topics")
        limit = settings.GUILDSITE_WS_MAX_TOPICS
        if not isinstance(topics, list) or not topics or len(topics) > limit:
            raise frames.FrameError(frames.INVALID_FRAME, f"'data' is {{\"topics\": [...]}}: a list of 1-{limit} topics")
        return list(dict.fromkeys(str(topic) if not isinstance(topic, str) else topic for topic in topics))

    async def _subscribe(self, topics: list[str], *, request_id: str | None) -> None:
        room = settings.GUILDSITE_WS_MAX_TOPICS - len(self.followed)
        new = [topic for topic in topics if topic not in self.followed]
        within_cap, over_cap = new[:max(room, 0)], set(new[max(room, 0):])
        checked = [topic for topic in within_cap if self.checks.take()]  # over the checking budget: refused
        unchecked = set(within_cap) - set(checked)
        refused = await database_sync_to_async(self._refused)(checked) if checked else {}
        allowed = set(checked) - refused.keys()
        for topic in topics:
            problem = refused.get(topic)
            if topic in over_cap or (topic in allowed and len(self.followed) >= settings.GUILDSITE_WS_MAX_TOPICS):
                problem = live_topics.TopicRefused(
                    live_topics.TOO_MANY_TOPICS,
                    f"a socket follows at most {settings.GUILDSITE_WS_MAX_TOPICS} topics: unsubscribe from one first")
            elif topic in unchecked:
                problem = live_topics.TopicRefused(
                    live_topics.RATE_LIMITED, f"too many topics checked just now: at most {self.checks.capacity:g} "
                                              f"at once, then {self.checks.rate:g} a second; subscribe again")
            elif topic in allowed and topic not in self.followed:
                problem = await self._follow(topic)
            elif problem is None and topic not in self.followed:  # dropped by a check of rights meanwhile
                problem = live_topics.TopicRefused(live_topics.NOT_FOUND, f"topic '{topic}' not found")
            if problem is not None:
                shown = topic[:live_topics.TOPIC_MAX_CHARS]
                self._reply("subscribe_error", shown, {"topic": shown, "reason": problem.reason,
                                                       "message": str(problem), "request_id": request_id})
            else:
                self._reply("subscribe_ack", topic, {"topic": topic, "request_id": request_id})

    async def _follow(self, topic: str) -> live_topics.TopicRefused | None:
        self.followed.add(topic)
        try:
            await runtime_loop.arun(self.hub.follow(topic, self))
        except Exception as exc:
            self.followed.discard(topic)
            logger.exception("following a live topic failed")
            return live_topics.TopicRefused(live_topics.UNAVAILABLE, f"the live events are unavailable: {exc}; "
                                                                     f"try again")
        return None

    async def _unsubscribe(self, topics: list[str], *, request_id: str | None) -> None:
        followed = [topic for topic in topics if topic in self.followed]
        self.followed.difference_update(followed)
        if followed:
            await runtime_loop.arun(self.hub.unfollow(followed, self))
        for topic in topics:
            topic = topic[:live_topics.TOPIC_MAX_CHARS]
            self._reply("unsubscribe_ack", topic, {"topic": topic, "request_id": request_id})
