"""`/ws/agents/`: external agents connect here (README "External agents", the protocol).

A thin edge over guilds.external: the key in `Authorization: Bearer` or `?token=`; 4401 when it is missing or
bad (or is revoked while connected), 4403 when it is not this agent's key, 4408 when pings go unanswered, 4409
when a newer connection of the same agent replaced this one. No browser Origin check: only an agent key opens
it, never a session cookie. What waits for the agent (messages, commands) is read from the database whenever a
wake-up comes over the live bus, and every ping interval in case one was lost; up to GUILDSITE_EXTERNAL_IN_FLIGHT
messages are sent before the agent acknowledges them.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import time
import uuid
from collections import OrderedDict
from typing import Any

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncWebsocketConsumer
from django.conf import settings
from django.utils import timezone

from guilds.engines import bus_of
from guilds.external import commands, inbox, presence, registry, signals
from guilds.models import ExternalAgent, ExternalCommand, ExternalStatus, Guild, GuildStatus
from guilds.runtime import loop as runtime_loop
from guilds.services import guild_resume
from guilds.sockets import frames
from guilds.sockets.live_hub import live_hub
from guilds.sockets.throttle import TokenBucket
from guildsite.accounts.tokens import CredentialError
from guildsite.identity import socket_credential
from messaging.errors import MessagingError
from messaging.message import Message

logger = logging.getLogger(__name__)

CLOSE_NOT_AUTHENTICATED = 4401
CLOSE_FORBIDDEN = 4403
CLOSE_PONGS_STOPPED = 4408
CLOSE_REPLACED = 4409
CLOSE_POLICY = 1008
REGISTER_WITHIN_SECONDS = 30  # a socket that never registers does not stay open on a valid key

# Error codes of `error` frames.
INVALID_JSON = "invalid_json"
INVALID_FRAME = "invalid_frame"
TOO_LARGE = "too_large"
RATE_LIMITED = "rate_limited"
NOT_REGISTERED = "not_registered"
UNKNOWN_TYPE = "unknown_type"
NOT_FOUND = "not_found"
UNKNOWN_MESSAGE = "unknown_message"
UNKNOWN_DELIVERY = "unknown_delivery"
UNKNOWN_COMMAND = "unknown_command"
GUILD_STOPPED = "guild_stopped"
PUBLISH_FAILED = "publish_failed"
INTERNAL = "internal"
ELAPSED_MAX_MS = 10**12

STATUSES = frozenset({ExternalStatus.ONLINE, ExternalStatus.BUSY, ExternalStatus.OFFLINE})
FORMAT_MAX_CHARS = 256
RECENT_ORIGINS = 1_000  # messages sent on this connection, kept for replies that come after their ack
RECENT_MAX_CHARS = 8 * 1024 * 1024  # ...and at most this much of them
ACKED_REMEMBERED = 10_000
ACK_FLUSH_SECONDS = 0.05
ACK_BATCH = 100
TARGET_SECONDS = 2.0  # how long a guild looked up for publishing is used before it is read again


class Close(Exception):
    def __init__(self, code: int, error: str, detail: str) -> None:
        super().__init__(detail)
        self.code = code
        self.error = error


def _frame(type_: str, **fields: Any) -> str:
    return json.dumps({"type": type_, **fields}, separators=(",", ":"))


def _int_of(value: Any, *, minimum: int = 0, maximum: int = 2**63 - 1) -> int | None:
    """An integer (or a string of ASCII digits) within [minimum, maximum]; None otherwise."""
    if isinstance(value, bool):
        return None
    if isinstance(value, str) and value.isascii() and value.lstrip("-").isdigit() and len(value) <= 20:
        value = int(value)
    if isinstance(value, int) and minimum <= value <= maximum:
        return value
    return None


def _command_frame(command: ExternalCommand) -> str:
    # The time left, not the whole timeout: a command that waited for an offline agent has less of it.
    left = max(1, math.ceil((command.expires_at - timezone.now()).total_seconds()))
    return _frame("command", command_id=command.pk, command_type=command.type, content=command.content,
                  parameters=command.parameters, is_cancellation=command.is_cancellation,
                  timeout_s=min(command.timeout_s, left))


class AgentSocketConsumer(AsyncWebsocketConsumer):
    channel_layer_alias = "guildsite-sockets-use-the-bus"  # wake-ups come over the live bus

    async def connect(self) -> None:
        self.agent_id: str | None = None
        self.connection_id = uuid.uuid4().hex
        self.registered = False
        self.closing = False
        self.hub = None
        self.followed: list[str] = []
        self.tasks: list[asyncio.Task] = []
        self.background: set[asyncio.Task] = set()
        self.in_flight: dict[int, tuple[str, int]] = {}  # delivery id -> (guild id, message id)
        self.recent: OrderedDict[tuple[str, int], tuple[str, str]] = OrderedDict()  # -> (seat id, message JSON)
        self.recent_chars = 0
        self.commands_resend = True
        self.pushed: list[dict[str, Any]] = []  # deliveries a wake-up carried, not sent yet
        self.scan_due = self.commands_due = False
        self.backlog = True  # more may wait in the queue than was sent: read it (until a scan finds the end)
        self.acked: OrderedDict[int, None] = OrderedDict()  # recently acknowledged: a late wake-up does not resend
        self.acked_pending: set[int] = set()  # acknowledged, removed from the queue in the next batch
        self.ack_flush_at = 0.0
        self.ack_flush_scheduled = False
        self.targets: dict[str, tuple[float, Guild, dict]] = {}  # guild id -> (until, guild, seat): publish lookups
        self.status_followers: list[str] | None = None  # status updates held until the snapshot is out
        self.loop = asyncio.get_running_loop()
        self.work = asyncio.Event()
        self.last_pong = self.last_heartbeat = self.opened_at = time.monotonic()
        self.stale = False
        self.bucket = TokenBucket(settings.GUILDSITE_EXTERNAL_RATE_PER_SECOND, settings.GUILDSITE_EXTERNAL_RATE_BURST)
        await self.accept()
        try:
            self.credential = socket_credential(self.scope)
            agent = await database_sync_to_async(registry.agent_for_credential)(self.credential)
        except CredentialError as exc:
            return await self._close(Close(CLOSE_NOT_AUTHENTICATED, "unauthenticated", str(exc)))
        except registry.NotAnAgentKey as exc:
            return await self._close(Close(CLOSE_FORBIDDEN, "forbidden", str(exc)))
        self.agent_id, self.organization_id, self.name = agent.pk, agent.organization_id, agent.name
        self.hub = await runtime_loop.arun(live_hub())
        await self._follow(signals.work_topic(self.agent_id))
        self.tasks = [asyncio.ensure_future(self._pump()), asyncio.ensure_future(self._watch())]

    async def _follow(self, topic: str) -> None:
        await runtime_loop.arun(self.hub.follow(topic, self))
        self.followed.append(topic)

    async def _close(self, close: Close) -> None:
        if self.closing:
            return
        self.closing = True
        logger.info("agent socket closed: %s", close, extra={"external_agent_id": self.agent_id})
        await self.send(text_data=_frame("error", code=close.error, detail=str(close)))
        await self.close(code=close.code)

    async def disconnect(self, code: int) -> None:
        for task in self.tasks:
            task.cancel()
        await asyncio.shield(self._clean_up())

    async def _clean_up(self) -> None:
        if self.followed:
            followed, self.followed = self.followed, []
            try:
                await runtime_loop.arun(self.hub.unfollow(followed, self))
            except Exception:
                logger.exception("agent socket clean-up failed", extra={"external_agent_id": self.agent_id})
        if self.acked_pending:
            acked, self.acked_pending = self.acked_pending, set()
            try:
                await database_sync_to_async(inbox.deliveries_ack)(self.agent_id, acked)
            except Exception:  # sent again on the next connection: the SDK drops what it handled
                logger.exception("could not remove acknowledged messages", extra={"external_agent_id": self.agent_id})
        if self.registered:
            self.registered = False
            try:
                gone = await database_sync_to_async(presence.agent_disconnected)(self.agent_id, self.connection_id)
                if gone is not None:
                    await presence.announce(gone)
            except Exception:  # the row goes offline by itself once heartbeats are overdue
                logger.exception("could not mark an external agent offline", extra={"external_agent_id": self.agent_id})

    # --- wake-ups (on the runtime loop) ----------------------------------------------------
    def take(self, frame: bytes, event: Message) -> None:
        self.loop.call_soon_threadsafe(self._woken, event)

    def _woken(self, event: Message) -> None:
        payload = event.payload
        if event.format == signals.STATUS:
            if self.status_followers is not None:
                self.status_followers.append(_frame("status_update", agent=payload))
            else:
                self._spawn(self._send(_frame("status_update", agent=payload)))
            return
        if payload.get("revoked"):
            self._spawn(self._close(Close(CLOSE_NOT_AUTHENTICATED, "unauthenticated", "this agent was deleted: its key "
                                                                                     "no longer works")))
            return
        replaced_by = payload.get("connection")
        if replaced_by and replaced_by != self.connection_id and self.registered:
            self._spawn(self._close(Close(CLOSE_REPLACED, "replaced", "another connection of this agent registered")))
            return
        if payload.get("commands"):
            self.commands_due = True
        deliveries = payload.get("deliveries")
        if deliveries:
            self.pushed.extend(deliveries)
        elif not payload.get("commands"):
            self.scan_due = True
        self.work.set()

    def _spawn(self, coro) -> None:
        task = asyncio.ensure_future(coro)
        self.background.add(task)  # held until done: the loop keeps only weak references
        task.add_done_callback(self.background.discard)

    async def _send(self, text: str) -> None:
        if not self.closing:
            await self.send(text_data=text)

    # --- what waits, out -------------------------------------------------------------------
    async def _pump(self) -> None:
        """One task sends everything, in order: messages a wake-up carried (no database read for them), a scan of
        the queue when one may have been missed (at registration, with the window full, every ping interval),
        commands, and the acknowledged messages' removal, in batches."""
        while True:
            try:
                await asyncio.wait_for(self.work.wait(), settings.GUILDSITE_EXTERNAL_PING_SECONDS)
            except TimeoutError:
                self.scan_due = self.commands_due = True  # a look now and then: a wake-up may have been lost
            self.work.clear()
            if not self.registered or self.closing:
                continue
            try:
                if self.commands_due:
                    self.commands_due = False
                    await self._send_commands()
                if self.scan_due or self.backlog:
                    self.scan_due = False
                    self.pushed.clear()  # the scan reads them from the queue, in order
                    await self._scan()
                elif self.pushed:
                    pushed, self.pushed = self.pushed, []
                    await self._send_pushed(pushed)
                elif self.acked_pending and (len(self.acked_pending) >= ACK_BATCH
                                             or time.monotonic() >= self.ack_flush_at):
                    acked, self.acked_pending = self.acked_pending, set()
                    await database_sync_to_async(inbox.deliveries_ack)(self.agent_id, acked)
                elif self.acked_pending:
                    self._spawn(self._flush_acks_later())
            except Exception:
                logger.exception("sending to an external agent failed", extra={"external_agent_id": self.agent_id})
                self.scan_due = True  # what was not sent is read again from the queue

    async def _flush_acks_later(self) -> None:
        """Acknowledged messages are removed in batches: one write per ACK_FLUSH_SECONDS, not one per message."""
        if self.ack_flush_scheduled:
            return
        self.ack_flush_scheduled = True
        try:
            await asyncio.sleep(max(0.0, self.ack_flush_at - time.monotonic()))
        finally:
            self.ack_flush_scheduled = False
        self.work.set()

    def _room(self) -> int:
        return settings.GUILDSITE_EXTERNAL_IN_FLIGHT - len(self.in_flight)

    async def _deliver(self, delivery_id: int, guild_id: str, seat_id: str, message_id: int, message: str) -> None:
        self.in_flight[delivery_id] = (guild_id, message_id)
        self.recent[(guild_id, message_id)] = (seat_id, message)
        self.recent_chars += len(message)
        while len(self.recent) > RECENT_ORIGINS or self.recent_chars > RECENT_MAX_CHARS:
            _, (_, dropped) = self.recent.popitem(last=False)
            self.recent_chars -= len(dropped)
        # The stored JSON goes out as it is: no decoding and encoding again per message.
        await self._send(f'{{"type":"message","delivery_id":"{delivery_id}","guild_id":{json.dumps(guild_id)},'
                         f'"message":{message}}}')

    async def _send_pushed(self, pushed: list[dict[str, Any]]) -> None:
        for delivery in pushed:
            delivery_id = delivery["id"]
            if delivery_id in self.in_flight or delivery_id in self.acked:
                continue  # a scan sent it already
            if self._room() <= 0:
                self.backlog = True  # the rest waits in the queue: a scan sends it as acknowledgements free the window
                return
            await self._deliver(delivery_id, delivery["guild_id"], delivery["seat_id"], delivery["message_id"],
                                delivery["message"])

    async def _scan(self) -> None:
        acked, self.acked_pending = self.acked_pending, set()
        room = self._room()
        # Taken here, on the loop: what is sent or acknowledged while the read runs was in one of these then.
        sent_or_acked = [*self.in_flight, *acked]
        deliveries = await database_sync_to_async(self._waiting)(room, acked, sent_or_acked)
        self.backlog = room <= 0 or len(deliveries) >= room
        for delivery in deliveries:
            if delivery.pk not in self.in_flight and delivery.pk not in self.acked:
                await self._deliver(delivery.pk, delivery.guild_id, delivery.seat_id, delivery.message_id,
                                    delivery.message)

    def _waiting(self, room: int, acked: set[int], sent_or_acked: list[int]) -> list:
        inbox.deliveries_ack(self.agent_id, acked)
        if room <= 0:
            return []
        return list(inbox.waiting_query(self.agent_id).exclude(pk__in=sent_or_acked)[:room])

    async def _send_commands(self) -> None:
        # Marked sent before they go: a cancellation from now on tells the agent (a connection that drops before
        # they arrive sends them again to the next one).
        to_send = await database_sync_to_async(commands.commands_claim)(self.agent_id, resend=self.commands_resend)
        self.commands_resend = False
        for command in to_send:
            await self._send(_command_frame(command))

    async def _watch(self) -> None:
        """Pings, and the key looked at again (revoked, or its agent deleted: 4401)."""
        interval = settings.GUILDSITE_EXTERNAL_PING_SECONDS
        next_check = time.monotonic() + settings.GUILDSITE_WS_RECHECK_SECONDS
        while True:
            await asyncio.sleep(interval)
            if time.monotonic() - self.last_pong > 2 * interval + 1:
                await self._close(Close(CLOSE_PONGS_STOPPED, "pongs_stopped",
                                        f"no pong for {2 * interval:g} s: the connection is closed"))
                return
            await self._send(_frame("ping"))
            if not self.registered and time.monotonic() - self.opened_at > REGISTER_WITHIN_SECONDS:
                await self._close(Close(CLOSE_POLICY, "not_registered", f"no 'register' frame within "
                                                                        f"{REGISTER_WITHIN_SECONDS} s"))
                return
            if self.registered and not self.stale and time.monotonic() - self.last_heartbeat > \
                    presence.offline_after().total_seconds():
                self.stale = True  # connected but silent: offline by its row's reading; tell who follows
                agent = await database_sync_to_async(ExternalAgent.objects.filter(pk=self.agent_id).first)()
                if agent is not None:
                    await presence.announce(agent)
            if time.monotonic() >= next_check:
                next_check = time.monotonic() + settings.GUILDSITE_WS_RECHECK_SECONDS
                try:
                    await database_sync_to_async(registry.agent_still_admitted)(self.agent_id, self.credential)
                except (CredentialError, registry.NotAnAgentKey) as exc:
                    await self._close(Close(CLOSE_NOT_AUTHENTICATED, "unauthenticated", str(exc)))
                    return
                except Exception:
                    logger.exception("checking an agent's key failed; trying again", extra={"external_agent_id": self.agent_id})

    async def dispatch(self, message: dict) -> None:
        # Channels closes stale database connections before every event; the frames' own reads do that already.
        if message["type"] == "websocket.receive":
            await self.websocket_receive(message)
        else:
            await super().dispatch(message)

    # --- frames in --------------------------------------------------------------------------
    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        if self.agent_id is None or self.closing:
            return
        try:
            if not self.bucket.take():
                raise frames.FrameError(RATE_LIMITED, f"too many frames: at most {settings.GUILDSITE_EXTERNAL_RATE_PER_SECOND:g}"
                                                      "/s; this one was not taken")
            frame = frames.decode(text_data, bytes_data, max_bytes=settings.GUILDSITE_WS_FRAME_MAX_BYTES,
                                  shape='a JSON object with a "type"')
            kind = frame.get("type")
            handler = _HANDLERS.get(kind) if isinstance(kind, str) else None
            if handler is None:
                raise frames.FrameError(UNKNOWN_TYPE, f"unknown frame type {kind!r}; types: {', '.join(sorted(_HANDLERS))}")
            if not self.registered and kind not in ("register", "pong"):
                raise frames.FrameError(NOT_REGISTERED, "send a 'register' frame first")
            await handler(self, frame)
        except frames.FrameError as exc:
            code = {frames.INVALID_JSON: INVALID_JSON, frames.INVALID_FRAME: INVALID_FRAME,
                    frames.PAYLOAD_TOO_LARGE: TOO_LARGE}.get(exc.error_type, exc.error_type)
            await self._send(_frame("error", code=code, detail=str(exc)))
        except Close as close:
            await self._close(close)
        except Exception:  # the socket goes on: a frame the server failed on is that frame's error only
            logger.exception("an agent's frame failed", extra={"external_agent_id": self.agent_id})
            await self._send(_frame("error", code=INTERNAL, detail="the server failed on this frame; it was not taken"))

    async def on_register(self, frame: dict[str, Any]) -> None:
        named = frame.get("agent_id")
        if named not in (None, "", self.agent_id):
            raise Close(CLOSE_FORBIDDEN, "forbidden", f"this key is external agent {self.agent_id}'s, not {named!r}'s")
        metadata = presence.registration_metadata(frame)
        agent, _ = await database_sync_to_async(presence.agent_connected)(self.agent_id, self.connection_id, metadata)
        self.registered = True
        self.commands_resend = self.scan_due = self.commands_due = True
        self.last_pong = self.last_heartbeat = time.monotonic()
        await self._send(_frame("registered", agent_id=self.agent_id,
                                heartbeat_interval_s=presence.heartbeat_interval()))
        # Older connections of this agent close (4409) when they hear it.
        await signals.work_waits(self.agent_id, connection=self.connection_id)
        await presence.announce(agent)  # awaited: the offline announcement of a close comes after it
        self.work.set()

    async def on_heartbeat(self, frame: dict[str, Any]) -> None:
        status = frame.get("status", ExternalStatus.ONLINE)
        if status not in STATUSES:
            raise frames.FrameError(INVALID_FRAME, f"status must be one of {', '.join(sorted(STATUSES))}")
        if status == ExternalStatus.OFFLINE:  # going away: offline now, not when heartbeats are overdue
            agent = await database_sync_to_async(presence.agent_disconnected)(self.agent_id, self.connection_id)
            self.registered = False
            if agent is not None:
                await presence.announce(agent)
            return
        self.last_heartbeat, self.stale = time.monotonic(), False
        agent, changed = await database_sync_to_async(presence.agent_heartbeat)(
            self.agent_id, self.connection_id, status, presence.metrics_of(frame))
        if agent is None:
            raise Close(CLOSE_REPLACED, "replaced", "another connection of this agent registered")
        await self._send(_frame("heartbeat_ack", interval_s=presence.heartbeat_interval()))
        if changed:
            await presence.announce(agent)

    async def on_pong(self, frame: dict[str, Any]) -> None:
        self.last_pong = time.monotonic()

    async def on_ack(self, frame: dict[str, Any]) -> None:
        delivery_id = _int_of(frame.get("delivery_id"))
        if delivery_id is None:
            raise frames.FrameError(INVALID_FRAME, "an ack needs the 'delivery_id' of a message frame")
        if self.in_flight.pop(delivery_id, None) is not None:
            # Removed within ACK_FLUSH_SECONDS, with others: a crash before then sends it again (at-least-once).
            if not self.acked_pending:
                self.ack_flush_at = time.monotonic() + ACK_FLUSH_SECONDS
            self.acked_pending.add(delivery_id)
            self.acked[delivery_id] = None
            while len(self.acked) > ACKED_REMEMBERED:
                self.acked.popitem(last=False)
        elif delivery_id in self.acked or not await database_sync_to_async(inbox.deliveries_ack)(self.agent_id,
                                                                                                {delivery_id}):
            raise frames.FrameError(UNKNOWN_DELIVERY, f"delivery {delivery_id} is not waiting (acknowledged already?)")
        self.work.set()

    async def on_publish(self, frame: dict[str, Any]) -> None:
        guild_id, format_name, payload = frame.get("guild_id"), frame.get("format"), frame.get("payload")
        if not isinstance(guild_id, str) or not guild_id:
            raise frames.FrameError(INVALID_FRAME, "a publish needs a 'guild_id'")
        if not isinstance(format_name, str) or not 0 < len(format_name) <= FORMAT_MAX_CHARS:
            raise frames.FrameError(INVALID_FRAME, f"a publish needs a 'format' of 1-{FORMAT_MAX_CHARS} characters")
        if not isinstance(payload, dict):
            raise frames.FrameError(INVALID_FRAME, "a publish needs a 'payload' object")
        in_response_to = frame.get("in_response_to")
        origin_id = None if in_response_to is None else _int_of(in_response_to)
        if in_response_to is not None and origin_id is None:
            raise frames.FrameError(INVALID_FRAME, "'in_response_to' is the id of a message the agent was sent")
        conversation_id = frame.get("conversation_id")
        if conversation_id is not None and not (isinstance(conversation_id, str) and 0 < len(conversation_id) <= 128) \
                and _int_of(conversation_id) is None:
            raise frames.FrameError(INVALID_FRAME, "'conversation_id' is a string of 1-128 characters (or an integer)")
        if guild_id in self.targets and (origin_id is None or (guild_id, origin_id) in self.recent) \
                and self.targets[guild_id][0] >= time.monotonic():
            context = self._publish_context(guild_id, origin_id)  # all in memory: no thread hop
        else:
            context = await database_sync_to_async(self._publish_context)(guild_id, origin_id)
        guild, seat, origin, fresh = context
        try:
            await runtime_loop.arun(self._publish(guild, seat, format_name, payload, origin,
                                                  None if conversation_id is None else str(conversation_id), fresh))
        except MessagingError as exc:
            raise frames.FrameError(PUBLISH_FAILED, f"not published: {exc}") from None

    def _publish_context(self, guild_id: str, origin_id: int | None) -> tuple[Guild, dict, Message | None, bool]:
        """(guild, seat, the message answered, whether the guild was read now). Guilds are read again every
        TARGET_SECONDS; the message answered comes from what this connection sent, else from the queue."""
        cached = self.targets.get(guild_id)
        fresh = cached is None or cached[0] < time.monotonic()
        if fresh:
            if not ExternalAgent.objects.filter(pk=self.agent_id).exists():
                raise Close(CLOSE_NOT_AUTHENTICATED, "unauthenticated", "this agent was deleted: its key no longer works")
            guild = Guild.objects.filter(pk=guild_id, organization_id=self.organization_id).first()
            seat = inbox.seat_of(self.agent_id, guild) if guild is not None else None
            if seat is None:
                self.targets.pop(guild_id, None)
                raise frames.FrameError(NOT_FOUND, f"guild '{guild_id}' does not exist or does not seat this agent")
            self.targets[guild_id] = (time.monotonic() + TARGET_SECONDS, guild, seat)
        _, guild, seat = self.targets[guild_id]
        if guild.status == GuildStatus.STOPPED:
            raise frames.FrameError(GUILD_STOPPED, f"guild '{guild_id}' is stopped")
        if origin_id is None:
            return guild, seat, None, fresh
        if (guild_id, origin_id) in self.recent:
            seat_id, raw = self.recent[(guild_id, origin_id)]
            waiting = seat_id, Message.from_json(raw)
        else:
            waiting = inbox.waiting_origin(self.agent_id, guild_id, origin_id)
        if waiting is None:
            raise frames.FrameError(UNKNOWN_MESSAGE, f"message {origin_id} was not sent to this agent in guild "
                                                     f"'{guild_id}' (or not recently enough to answer it)")
        seat_id, origin = waiting
        seat = next((agent for _, agent in registry.seats_in(guild.spec) if str(agent.get("id")) == seat_id), seat)
        return guild, seat, origin, fresh

    @staticmethod
    async def _publish(guild: Guild, seat: dict, format_name: str, payload: dict, origin: Message | None,
                       conversation_id: str | None, resume: bool) -> None:
        if resume:  # as often as the guild is read: it counts as used, and a suspended one comes back first
            await guild_resume(guild_id=guild.pk, spec=guild.spec)
        await inbox.publish_as_seat(bus_of(guild.pk, guild.spec), seat, format_name=format_name, payload=payload,
                                    origin=origin, conversation_id=conversation_id)

    async def on_command_ack(self, frame: dict[str, Any]) -> None:
        command_id = frame.get("command_id")
        if not isinstance(command_id, str) or not command_id:
            raise frames.FrameError(INVALID_FRAME, "a command_ack needs the 'command_id'")
        await database_sync_to_async(commands.command_acknowledged)(self.agent_id, command_id)

    async def on_command_result(self, frame: dict[str, Any]) -> None:
        command_id, success = frame.get("command_id"), frame.get("success")
        if not isinstance(command_id, str) or not command_id or not isinstance(success, bool):
            raise frames.FrameError(INVALID_FRAME, "a command_result needs 'command_id' and 'success' (true or false)")
        output, error_message = frame.get("output") or "", frame.get("error_message") or ""
        exit_code, elapsed = frame.get("exit_code"), frame.get("execution_time_ms")
        if not isinstance(output, str) or not isinstance(error_message, str):
            raise frames.FrameError(INVALID_FRAME, "'output' and 'error_message' are strings")
        if exit_code is not None and _int_of(exit_code, minimum=-(2**31), maximum=2**32 - 1) is None:
            raise frames.FrameError(INVALID_FRAME, "'exit_code' is an integer or null")
        if elapsed is not None and (isinstance(elapsed, bool) or not isinstance(elapsed, (int, float))
                                    or not 0 <= elapsed <= ELAPSED_MAX_MS):
            raise frames.FrameError(INVALID_FRAME, "'execution_time_ms' is a number of milliseconds or null")
        try:
            await database_sync_to_async(commands.command_result)(
                self.agent_id, command_id, success=success, output=output, error_message=error_message,
                exit_code=None if exit_code is None else int(exit_code),
                execution_time_ms=None if elapsed is None else int(elapsed))
        except KeyError:
            raise frames.FrameError(UNKNOWN_COMMAND, f"command '{command_id}' is not this agent's") from None

    async def on_subscribe_status(self, frame: dict[str, Any]) -> None:
        if signals.status_topic(self.organization_id) in self.followed:
            return
        self.status_followers = []  # changes heard while the snapshot is read wait for it
        await self._follow(signals.status_topic(self.organization_id))
        snapshot = await database_sync_to_async(presence.status_snapshot)(self.organization_id)
        await self._send(_frame("status_snapshot", agents=snapshot))
        held, self.status_followers = self.status_followers, None
        for text in held:
            await self._send(text)


_HANDLERS = {
    "register": AgentSocketConsumer.on_register,
    "heartbeat": AgentSocketConsumer.on_heartbeat,
    "pong": AgentSocketConsumer.on_pong,
    "ack": AgentSocketConsumer.on_ack,
    "publish": AgentSocketConsumer.on_publish,
    "command_ack": AgentSocketConsumer.on_command_ack,
    "command_result": AgentSocketConsumer.on_command_result,
    "subscribe_status": AgentSocketConsumer.on_subscribe_status,
}
