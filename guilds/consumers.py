"""The guild sockets (seed 000 phases 3 to 5): thin edges between a browser and the guild's bus.

Both sockets subscribe a client on the guild's bus (on the runtime loop) and relay what it
receives; what the browser sends is parsed by guilds.sockets.frames and published. Who is
connecting comes from guildsite.identity (scope["actor"]); what they may do from
guildsite.permissions. Checks run in this order, each refusal an ErrorMessage frame and then a
close (README "Protocol"): 4401 no or bad credentials, 4400 bad user id, 4404 unknown guild (or
another organisation's), 4403 not permitted, 4410 guild stopped, 1008 too many sockets for this
user. 4429 closes a client too slow to read its frames: more of them, or of their bytes, waiting in its outbox
than GUILDSITE_WS_OUTBOX_LIMIT / GUILDSITE_WS_OUTBOX_MAX_BYTES allow (under guildsite.serve frames wait there,
not in the server's write buffer: guilds.sockets.flow).
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections import OrderedDict
from typing import Any

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncWebsocketConsumer
from django.conf import settings

from guilds.engines import bus_of, engine_for_spec
from guilds.models import AgentKind, Guild, GuildStatus
from guilds.runtime import formats, store
from guilds.runtime import loop as runtime_loop
from guilds.runtime.activity import activity
from guilds.runtime.manager import user_proxy_id
from guilds.runtime.requests import system_request
from guilds.selectors import guild_for, run_for
from guilds.services import RunFinished, guild_member_add, guild_resume, run_cancel
from guilds.sockets import cap, frames, user_sockets
from guilds.sockets.flow import write_flow
from guilds.sockets.recheck import rights_checks
from guilds.sockets.throttle import TokenBucket
from guildsite import permissions
from guildsite.accounts.names import USER_ID_RULE, account_display_name, is_display_name, is_user_id
from guildsite.identity import Actor, resolve_socket_actor
from messaging import topics as topic_names
from messaging.clients import RecentIds, SimpleClient
from messaging.errors import MessagingError
from messaging.ids import parse_id
from messaging.message import Message

logger = logging.getLogger(__name__)

CLOSE_BAD_USER = 4400
CLOSE_NOT_AUTHENTICATED = 4401
CLOSE_FORBIDDEN = 4403
CLOSE_UNKNOWN_GUILD = 4404
CLOSE_GUILD_STOPPED = 4410
CLOSE_TOO_SLOW = 4429
CLOSE_POLICY = 1008
UNFORWARDED_TRACKED = 64  # a user socket's messages awaiting their proxy, at most, before it stops keeping count


class Refused(Exception):
    def __init__(self, code: int, error_type: str, reason: str) -> None:
        super().__init__(reason)
        self.code = code
        self.error_type = error_type


class GuildSocket(AsyncWebsocketConsumer):
    """What both sockets share: guild lookup, the bus client, the relay, throttling, error frames."""

    kind = "socket"
    # Replies come over the guild's bus, not the channel layer: no per-socket layer channel (a Redis
    # subscription each, and one more thing to fail while Redis restarts).
    channel_layer_alias = "guildsite-sockets-use-the-bus"

    async def connect(self) -> None:
        self.client: SimpleClient | None = None
        self.pump: asyncio.Task | None = None
        self.watch: asyncio.Task | None = None
        self.accepted = False
        self.counted: str | None = None
        self.closing: asyncio.Future | None = None
        self.actor: Actor = self.scope["actor"]
        route = self.scope["url_route"]["kwargs"]
        self.guild_id = route["guild_id"]
        self.user_id = route["user_id"]
        self.user_name = route.get("user_name") or self.user_id
        self.error_topic = topic_names.user_notifications(self.user_id if is_user_id(self.user_id) else "unknown")
        try:
            self.guild = await self._admit()
        except Refused as refused:
            return await self._refuse(refused.code, refused.error_type, str(refused))
        if not self.actor.development and self.actor.user is not None:
            # Signed in, the name is the account's, whatever the URL says (seed 000's client names itself only in
            # development): nobody appears to the others as someone else.
            self.user_name = account_display_name(self.actor.user)
        # An open socket keeps its guild from being suspended; one that was is resumed before the socket
        # subscribes, so its first report and "ok" come from the agents back up.
        activity().hold(self.guild_id)
        self.held = True
        if self.guild.suspended:
            # Resuming may take longer than daphne waits for a socket to be accepted (5 s): accepted first.
            await self._accept()
        try:
            await runtime_loop.arun(guild_resume(guild_id=self.guild_id, spec=self.guild.spec))
        except Exception as exc:
            logger.exception("resuming the guild failed", extra={"guild_id": self.guild_id})
            return await self._refuse(1011, frames.UNAVAILABLE, f"the guild could not be resumed: {exc}; try again")
        self.stopped = False
        self.loop = asyncio.get_running_loop()
        # Bounded in frames and bytes: a client too slow to read is closed (4429) and resumes with
        # last_seen_id, losing nothing. Each frame waits with its JSON, serialised once, to count and send.
        self.outbox: asyncio.Queue[tuple[Message, bytes]] = asyncio.Queue(maxsize=settings.GUILDSITE_WS_OUTBOX_LIMIT)
        self.outbox_bytes = 0
        self.flow = write_flow(self.scope)  # None outside guildsite.serve: frames then go straight to the server
        self.delivered = RecentIds(1_000, horizon=300.0)  # a resume's replay meets live frames within it
        self.bucket = TokenBucket(settings.GUILDSITE_WS_RATE_PER_SECOND, settings.GUILDSITE_WS_RATE_BURST)
        self.client = SimpleClient(id=f"{self.kind}:{self.user_id}:{uuid.uuid4().hex[:12]}", name=self.user_name,
                                   handler=self._from_bus)
        try:
            self.bus = await runtime_loop.arun(self._subscribe())
        except MessagingError as exc:
            logger.error("socket cannot reach the guild's bus: %s", exc, extra={"guild_id": self.guild_id})
            self.client = None
            return await self._refuse(1011, frames.UNAVAILABLE, f"the guild's messaging backend is unavailable: {exc}")
        await self._accept()
        await self.opened()
        self.pump = asyncio.ensure_future(self._pump())
        self.watch = asyncio.ensure_future(self._keep_checking())

    async def _admit(self) -> Guild:
        """Who may open this socket, checked in the documented order; Refused says why not."""
        if self.scope.get("auth_error") or not (self.actor.is_authenticated or self.actor.development):
            raise Refused(CLOSE_NOT_AUTHENTICATED, frames.UNAUTHENTICATED,
                          self.scope.get("auth_error") or "no credentials: connect with ?token=<access token>")
        if not is_user_id(self.user_id) or not is_display_name(self.user_name):
            raise Refused(CLOSE_BAD_USER, frames.INVALID_USER,
                          f"a user id is {USER_ID_RULE}; a name 1-64 printable characters")
        if not self.actor.is_authenticated:  # development, and the URL's id could not be used
            raise Refused(CLOSE_BAD_USER, frames.INVALID_USER, f"a user id is {USER_ID_RULE}")
        try:
            guild = await database_sync_to_async(guild_for)(self.actor, self.guild_id)
        except permissions.NotFound:
            raise Refused(CLOSE_UNKNOWN_GUILD, frames.NOT_FOUND, f"guild '{self.guild_id}' does not exist") from None
        if self.user_id != self.actor.username:
            raise Refused(CLOSE_FORBIDDEN, frames.FORBIDDEN,
                          f"you are {self.actor.username}: a socket's user id must be your own, not {self.user_id}")
        try:
            await database_sync_to_async(self.permitted)(self.actor, guild)
        except permissions.Forbidden as exc:
            raise Refused(CLOSE_FORBIDDEN, frames.FORBIDDEN, str(exc)) from None
        if guild.status == GuildStatus.STOPPED:
            raise Refused(CLOSE_GUILD_STOPPED, frames.GUILD_STOPPED, f"guild '{self.guild_id}' is stopped")
        socket_id = uuid.uuid4().hex
        if not await cap.acquire(self.user_id, socket_id):
            raise Refused(CLOSE_POLICY, frames.TOO_MANY_SOCKETS,
                          f"{self.user_id} has {settings.GUILDSITE_WS_MAX_PER_USER} sockets open already: close one first")
        self.counted = socket_id
        return guild

    def permitted(self, actor: Actor, guild: Guild) -> None:
        """What this kind of socket needs beyond seeing the guild (blocking; raises permissions.Forbidden)."""

    async def _keep_checking(self) -> None:
        """Rights can end while a socket is open (a token expires, a key is revoked, a member leaves or is
        demoted): check them again every GUILDSITE_WS_RECHECK_SECONDS and when the credential expires."""
        async for _ in rights_checks(lambda: self.actor):
            try:
                self.actor = await database_sync_to_async(self._still_admitted)()
            except Refused as refused:
                logger.info("socket closed: %s", refused, extra={"guild_id": self.guild_id, "user_id": self.user_id})
                await self._error(refused.error_type, str(refused), None)
                await self.close(code=refused.code)
                return
            except Exception:
                logger.exception("checking a socket's rights failed; trying again", extra={"guild_id": self.guild_id})

    def _still_admitted(self) -> Actor:
        """The connect checks again, with the socket's credential looked at afresh (blocking)."""
        actor, why = resolve_socket_actor(self.scope)
        if why or not actor.is_authenticated:
            raise Refused(CLOSE_NOT_AUTHENTICATED, frames.UNAUTHENTICATED, why or "no longer signed in")
        if actor.username != self.user_id:
            raise Refused(CLOSE_FORBIDDEN, frames.FORBIDDEN, f"you are {actor.username}, not {self.user_id}")
        try:
            self.permitted(actor, guild_for(actor, self.guild_id))
        except permissions.NotFound:
            raise Refused(CLOSE_UNKNOWN_GUILD, frames.NOT_FOUND, f"guild '{self.guild_id}' does not exist") from None
        except permissions.Forbidden as exc:
            raise Refused(CLOSE_FORBIDDEN, frames.FORBIDDEN, str(exc)) from None
        return actor

    def topics(self) -> list[str]:
        """The topics this socket listens to (each socket kind names its own)."""
        return []

    async def _subscribe(self):
        bus = bus_of(self.guild.id, self.guild.spec)
        await bus.register_client(self.client)
        for topic in self.topics():
            await bus.subscribe(topic, self.client)
        return bus

    async def _accept(self) -> None:
        if not self.accepted:
            self.entering()
            await self.accept()
            self.accepted = True

    async def _refuse(self, code: int, error_type: str, reason: str) -> None:
        # Accepted first: a close before accept reaches a browser as HTTP 403 and code 1006, not this code.
        if not self.accepted:
            await self.accept()
            self.accepted = True
        await self.send(text_data=frames.error_frame(error_type, reason, topic=self.error_topic).decode())
        await self.close(code=code)

    async def disconnect(self, code: int) -> None:
        for task in (self.pump, self.watch):
            if task is not None:
                task.cancel()
        # Shielded: a server done waiting for this socket (daphne's close timeout) cancels it, and must not
        # cut the clean-up short.
        await asyncio.shield(self._clean_up())

    async def _clean_up(self) -> None:
        # Each step on its own: one that fails (Redis away) must not leave the socket counted or subscribed.
        if self.counted is not None:
            counted, self.counted = self.counted, None
            try:
                await cap.release(self.user_id, counted)
            except Exception:  # no longer renewed: it stops counting when its lease lapses
                logger.exception("could not uncount a closed socket", extra={"guild_id": self.guild_id})
        if self.client is not None:
            try:
                await runtime_loop.arun(self.bus.unregister_client(self.client))
            except Exception:
                logger.exception("socket clean-up failed", extra={"guild_id": self.guild_id})
        if getattr(self, "held", False):
            self.held = False
            activity().release(self.guild_id)

    # --- bus → socket --------------------------------------------------------------------
    def _from_bus(self, message: Message) -> None:
        # Called on the runtime loop: the server's own under daphne, else another thread's.
        if runtime_loop.in_loop(self.loop):
            self._queue(message)
        else:
            self.loop.call_soon_threadsafe(self._queue, message)

    def _queue(self, message: Message) -> None:
        if self.closing is not None:
            return  # the client resumes from what it has read
        data = message.to_json()
        # The byte bound is on a backlog the client is behind on: frames waiting while its write buffer is full.
        # Frames queued while the pump is merely behind (a burst landing at once on a busy loop) are not the
        # client's doing; the frame bound still holds for them. An empty outbox takes any one frame: the bound
        # is on a backlog, not on how large a message may be.
        client_behind = self.flow is not None and self.flow.paused
        over_bytes = (client_behind and self.outbox_bytes > 0
                      and self.outbox_bytes + len(data) > settings.GUILDSITE_WS_OUTBOX_MAX_BYTES)
        try:
            if over_bytes:
                raise asyncio.QueueFull
            self.outbox.put_nowait((message, data))
        except asyncio.QueueFull:
            logger.warning("socket too slow, closing it (%d frames, %d bytes waiting)", self.outbox.qsize(),
                           self.outbox_bytes, extra={"guild_id": self.guild_id, "user_id": self.user_id})
            self.closing = asyncio.ensure_future(self.close(code=CLOSE_TOO_SLOW))
            return
        self.outbox_bytes += len(data)

    async def _pump(self) -> None:
        while True:
            message, data = await self.outbox.get()
            if formats.is_stop_announcement(message):
                self.stopped = True
            try:
                await self.deliver(message, data)
            except Exception:
                logger.exception("relay to socket failed", extra={"guild_id": self.guild_id, "message_id": message.id})
            finally:
                self.outbox_bytes -= len(data)  # counted until sent: a frame waiting for room is still waiting

    async def deliver(self, message: Message, data: bytes | None = None) -> None:
        """Send one frame (`data`, the message's JSON, when already serialised), once the server's write
        buffer for this socket has room."""
        if self.delivered.add(message.id):
            if self.flow is not None:
                await self.flow.room()
            if self.closing is not None:
                return  # nothing after the close frame
            await self.send(text_data=(data if data is not None else message.to_json()).decode())

    def entering(self) -> None:
        """Admitted and subscribed, just before accept."""

    async def opened(self) -> None:
        """After accept: what the socket sends first."""

    async def dispatch(self, message: dict) -> None:
        # Channels closes stale database connections before every event; a frame uses none.
        if message["type"] == "websocket.receive":
            await self.websocket_receive(message)
        else:
            await super().dispatch(message)

    # --- socket → bus --------------------------------------------------------------------
    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        client_id = None
        try:
            within_rate = self.bucket.take()  # every frame counts, a malformed one too
            frame = frames.decode(text_data, bytes_data, max_bytes=settings.GUILDSITE_WS_FRAME_MAX_BYTES)
            client_id = None if frame.get("id") is None else str(frame.get("id"))
            if not within_rate:  # refused with the frame's own id, so the client knows which to send again
                raise frames.FrameError(
                    frames.RATE_LIMITED,
                    f"too many frames: at most {settings.GUILDSITE_WS_RATE_PER_SECOND:g}/s "
                    f"(bursts of {settings.GUILDSITE_WS_RATE_BURST}); this frame was not accepted",
                    client_message_id=client_id,
                )
            if self.stopped:
                raise frames.FrameError(frames.GUILD_STOPPED, "the guild is stopped; launch a new one from its blueprint",
                                        client_message_id=client_id)
            await self.handle_frame(frame)
        except frames.FrameError as exc:
            await self._error(exc.error_type, str(exc), exc.client_message_id or client_id)
        except MessagingError as exc:
            await self._error(type(exc).__name__, str(exc), client_id)

    async def _error(self, error_type: str, message: str, client_id: str | None) -> None:
        await self.send(text_data=frames.error_frame(error_type, message, topic=self.error_topic,
                                                     client_message_id=client_id).decode())

    async def handle_frame(self, frame: dict[str, Any]) -> None:
        """Publish what a valid frame asks for (each socket kind has its own)."""
        await self._error(frames.UNKNOWN_FORMAT, "this socket accepts no frames", None)


_reports_without_users: OrderedDict[int, dict[str, Any]] = OrderedDict()


def _agents_but_users(report: Message) -> dict[str, Any]:
    """A report's agents less the user proxies: what every system socket of the guild shows (with its own
    user's proxy added). Made once per report in this process, however many sockets show it."""
    agents = _reports_without_users.get(report.id)
    if agents is None:
        agents = {agent_id: entry for agent_id, entry in (report.payload.get("agents") or {}).items()
                  if entry.get("kind") != AgentKind.HUMAN}
        _reports_without_users[report.id] = agents
        if len(_reports_without_users) > 64:
            _reports_without_users.popitem(last=False)
    return agents


class UnmatchedSocket(AsyncWebsocketConsumer):
    """A socket URL that fits no route: refused with an ErrorMessage frame and a close code, as the
    guild sockets refuse (after accept, so a browser sees the code rather than 1006)."""

    channel_layer_alias = GuildSocket.channel_layer_alias
    code = CLOSE_UNKNOWN_GUILD
    error_type = frames.NOT_FOUND
    reason = "no such socket: the sockets are /ws/guilds/{guild_id}/syscomms/{user_id}, " \
             "/ws/guilds/{guild_id}/usercomms/{user_id}/{user_name} and /api/ws"

    async def connect(self) -> None:
        await self.accept()
        code, error_type, reason = self.code, self.error_type, self.reason
        if self.scope.get("auth_error"):
            code, error_type, reason = CLOSE_NOT_AUTHENTICATED, frames.UNAUTHENTICATED, self.scope["auth_error"]
        topic = topic_names.user_notifications("unknown")
        await self.send(text_data=frames.error_frame(error_type, reason, topic=topic).decode())
        await self.close(code=code)


class BadSocketPath(UnmatchedSocket):
    """A guild socket whose user id or name holds a '/': 4400, like any bad id."""

    code = CLOSE_BAD_USER
    error_type = frames.INVALID_USER
    reason = f"a user id is {USER_ID_RULE}; a name 1-64 printable characters without '/'"


class UnknownSocketPath(UnmatchedSocket):
    """Any other path: 4404."""


class UserCommsConsumer(GuildSocket):
    """`/ws/guilds/{guild_id}/usercomms/{user_id}/{user_name}`: chat with the guild."""

    kind = "usercomms"

    async def disconnect(self, code: int) -> None:
        if getattr(self, "present", False):
            self.present = False
            user_sockets.closed(self.guild_id, self.user_id)
        await super().disconnect(code)

    def topics(self) -> list[str]:
        # Guild events only tell this socket when the guild stops; they are not relayed.
        return [topic_names.user_notifications(self.user_id), topic_names.GUILD_EVENTS_TOPIC]

    def permitted(self, actor: Actor, guild: Guild) -> None:
        permissions.guild_join_check(actor, guild)

    def entering(self) -> None:
        user_sockets.opened(self.guild_id, self.user_id)  # before its client can see it open
        self.present = True
        self.engine = engine_for_spec(self.guild.spec)
        # What this socket published to the user's inbox and has not seen come back from the proxy yet: while
        # any waits, the next goes the same way, so it cannot overtake them (see handle_frame). The engine may
        # carry a message in itself only once the proxy carried one of this socket's (so the proxy is up and
        # nothing earlier waits for it), and not again after the guild changed status (its agents restarted).
        self.unforwarded: set[int] | None = set()
        self.proxy_proven = False

    async def opened(self) -> None:
        await database_sync_to_async(guild_member_add)(guild=self.guild, user=self.actor.user)
        await runtime_loop.arun(
            system_request(self.bus, format_name=formats.USER_AGENT_CREATION_REQUEST,
                           payload={"user_id": self.user_id, "user_name": self.user_name}, user_id=self.user_id)
        )
        for message in await runtime_loop.arun(self._missed()):
            await self.deliver(message)

    async def _missed(self) -> list[Message]:
        """What the user missed: everything after the message they name, or recent history."""
        notifications = topic_names.user_notifications(self.user_id)
        query = dict(part.split("=", 1) for part in self.scope.get("query_string", b"").decode().split("&") if "=" in part)
        last_seen = query.get("last_seen_id") or query.get("since_id")
        if last_seen:
            try:
                return await self.bus.get_messages_for_topic_since(notifications, parse_id(last_seen))
            except ValueError:
                pass
        limit = settings.GUILDSITE_WS_HISTORY_ON_CONNECT
        return await self.bus.get_messages(notifications, limit=limit) if limit else []

    async def deliver(self, message: Message, data: bytes | None = None) -> None:
        if message.topic_published_to == topic_names.GUILD_EVENTS_TOPIC:
            self.proxy_proven = False
            return
        if self.unforwarded and message.id in self.unforwarded:
            self.unforwarded.discard(message.id)  # the proxy carried it into the guild (its copy keeps the id)
            self.proxy_proven = not self.unforwarded
        await super().deliver(message, data)

    async def handle_frame(self, frame: dict[str, Any]) -> None:
        if frame.get("format") == formats.CANCEL_REQUEST:
            return await self._cancel_run(*frames.cancel_request(frame))
        message = frames.user_message(frame, user_id=self.user_id, user_name=self.user_name)
        # Straight into the guild when the engine can do it here (the proxy's work without its round trips),
        # else through the user's inbox, as always: then the proxy carries it once it is up.
        if self.proxy_proven and self.unforwarded is not None and not self.unforwarded and await runtime_loop.arun(
                self.engine.forward_for_user(self.guild_id, self.user_id, message)):
            return
        if self.unforwarded is not None:
            self.unforwarded.add(message.id)
            if len(self.unforwarded) > UNFORWARDED_TRACKED:  # (a guild whose routes send nothing back, say)
                self.unforwarded = None  # given up: this socket's messages all go through the inbox
        try:
            await runtime_loop.arun(self.bus.publish(message))
        except BaseException:
            if self.unforwarded:
                self.unforwarded.discard(message.id)  # not accepted: nothing to wait for
            raise

    async def _cancel_run(self, run_id: str, client_id: str | None) -> None:
        """As POST /api/runs/{id}/cancel, for a run of this socket's guild; the outcome is the run's end (its
        final chunk and reply), a refusal an ErrorMessage."""
        def cancel() -> None:
            self.actor.memo.clear()  # the rights of now, not of when the socket opened
            try:
                run = run_for(self.actor, run_id)
                if run.guild_id != self.guild_id:
                    raise permissions.NotFound(f"Run '{run_id}' not found.")
                permissions.run_cancel_check(self.actor, run)
                run_cancel(run=run)
            except permissions.NotFound as exc:
                raise frames.FrameError(frames.NOT_FOUND, str(exc), client_message_id=client_id) from None
            except permissions.Forbidden as exc:
                raise frames.FrameError(frames.FORBIDDEN, str(exc), client_message_id=client_id) from None
            except RunFinished as exc:
                raise frames.FrameError(frames.RUN_ENDED, str(exc), client_message_id=client_id) from None
        await database_sync_to_async(cancel)()


class SysCommsConsumer(GuildSocket):
    """`/ws/guilds/{guild_id}/syscomms/{user_id}`: the guild's health, participants, stop."""

    kind = "syscomms"
    last_report: Message | None = None
    grace_ends = 0.0

    async def connect(self) -> None:
        await super().connect()
        if self.client is not None:
            self.error_topic = topic_names.user_system_notifications(self.user_id)

    def topics(self) -> list[str]:
        return [topic_names.GUILD_STATUS_TOPIC, topic_names.user_system_notifications(self.user_id)]

    async def opened(self) -> None:
        # The seed's client opens its user socket on the first report: send one at once.
        latest = await runtime_loop.arun(self._latest_report())
        if latest is None:
            latest = Message.create(
                sender=frames.SERVER_TAG, topics=topic_names.GUILD_STATUS_TOPIC, format=formats.AGENTS_HEALTH_REPORT,
                payload={"agents": {}, "guild_health": "starting", "guild_status": self.guild.status},
            )
        self.grace_ends = time.monotonic() + settings.GUILDSITE_WATCHER_GRACE_SECONDS
        await self.deliver(latest)
        # A watcher (no user socket) hears "ok" when its grace ends, not only at the next report.
        self.grace_timer = self.loop.call_later(settings.GUILDSITE_WATCHER_GRACE_SECONDS, self._grace_over)

    def _grace_over(self) -> None:
        if self.last_report is None:
            return
        report = self._for_this_user(self.last_report)
        if report.payload.get("guild_health") == "ok":  # sent again: the one delivered before said "starting"
            self.grace_report = asyncio.ensure_future(self.send(text_data=report.to_json().decode()))

    async def disconnect(self, code: int) -> None:
        timer = getattr(self, "grace_timer", None)
        if timer is not None:
            timer.cancel()
        await super().disconnect(code)

    async def _latest_report(self) -> Message | None:
        """The last report, with the guild's status read after it: the manager writes a new status before it
        reports it, so a socket opening between the two would otherwise hear the status before. (Its health
        and agents stay the report's; a guild ended since, which no report may follow, says so in its health.)"""
        recent = await self.bus.get_messages(topic_names.GUILD_STATUS_TOPIC, limit=50)
        reports = [m for m in recent if m.format == formats.AGENTS_HEALTH_REPORT]
        if not reports:
            return None
        latest = reports[-1]
        status = await store.guild_status(self.guild_id)
        if status and status != latest.payload.get("guild_status"):
            payload = {**latest.payload, "guild_status": status}
            if status in (GuildStatus.STOPPED, GuildStatus.ERROR):
                payload["guild_health"] = status.lower()
            latest = latest.model_copy(update={"payload": payload})
        return latest

    async def deliver(self, message: Message, data: bytes | None = None) -> None:
        if message.format == formats.AGENTS_HEALTH_REPORT:
            self.last_report = message
            message, data = self._for_this_user(message), None
        await super().deliver(message, data)

    def _for_this_user(self, report: Message) -> Message:
        """`ok` on a user's system socket keeps seed 000's promise (the user's first message never goes
        into a socket still opening): it is withheld while this user's proxy is being set up, and for
        GUILDSITE_WATCHER_GRACE_SECONDS after the first report while the user has no user socket (the
        seed's client opens one on that report). After that a RUNNING guild is "ok" for a watcher too.
        The agents listed are the guild's and this user's own proxy: other users' proxies would make every
        report O(users) for each of the users' sockets (Participants lists them)."""
        payload = report.payload
        own_id = user_proxy_id(self.user_id)
        proxy = (payload.get("agents") or {}).get(own_id)
        health = payload.get("guild_health")
        if health == "ok" and payload.get("guild_status") == GuildStatus.RUNNING:
            if proxy is not None:
                ready = proxy.get("checkstatus") == "ok"
            else:
                ready = not user_sockets.has(self.guild_id, self.user_id) and time.monotonic() >= self.grace_ends
            if not ready:
                health = "starting"
        elif health == "ok":
            health = "starting"
        agents = _agents_but_users(report)
        if proxy is not None:
            agents = {**agents, own_id: proxy}
        return report.model_copy(update={"payload": {**payload, "agents": agents, "guild_health": health}})

    async def handle_frame(self, frame: dict[str, Any]) -> None:
        name, payload = frames.system_request(frame)
        if name == formats.STOP_GUILD_REQUEST:
            self.actor.memo.clear()  # the rights of now, not of when the socket opened
            try:
                await database_sync_to_async(permissions.guild_control_check)(self.actor, self.guild,
                                                                             doing="stopping a guild")
            except permissions.Forbidden as exc:
                raise frames.FrameError(frames.FORBIDDEN, str(exc)) from None
            except permissions.NotFound:  # no longer in its organisation: the socket goes too
                await self._error(frames.NOT_FOUND, f"guild '{self.guild_id}' does not exist", None)
                await self.close(code=CLOSE_UNKNOWN_GUILD)
                return
        payload = {**payload, "guild_id": self.guild_id, "user_id": self.user_id}
        await runtime_loop.arun(system_request(self.bus, format_name=name, payload=payload, user_id=self.user_id))

