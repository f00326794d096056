"""The Agent: one WebSocket connection to guildsite, kept alive, with message and command handlers."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import time
from collections import deque
from collections.abc import Callable
from typing import Any

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus

from . import protocol
from .backoff import Backoff
from .commands import CommandRunner
from .invoke import invoke
from .lru import BoundedLRU
from .models import AuthenticationRefused, IncomingMessage

log = logging.getLogger("guildsite_agent")

STABLE_AFTER_S = 30.0  # a connection registered this long resets the back-off
SHUTDOWN_GRACE_S = 5.0


class Agent:
    def __init__(self, url: str, key: str, *, name: str = "guildsite-agent", version: str = "0.0.0",
                 capabilities: list[str] | None = None, metrics: Callable[[], dict] | None = None):
        self.url, self._key = url, key
        self.name, self.version, self.capabilities = name, version, list(capabilities or [])
        self._metrics = metrics
        self.agent_id: str | None = None
        self._message_handler: Callable | None = None
        self._status_callbacks: list[Callable] = []
        self._commands = CommandRunner(lambda frame: self._send(frame, keep=True))
        self._seen = BoundedLRU(10_000)  # (guild_id, message id); lives as long as the Agent, across reconnects
        self._outbox: deque[dict] = deque(maxlen=1000)  # results and publishes waiting for a connection
        self._active: set[asyncio.Task] = set()
        self._ws: ClientConnection | None = None
        self._registered = False
        self._registered_at: float | None = None
        self._interval = 30.0
        self._busy = False
        self._stop_requested = False
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stopping: asyncio.Event | None = None
        self._heartbeat_task: asyncio.Task | None = None

    # --- registration of handlers -------------------------------------------------------------

    def on_message(self, fn: Callable) -> Callable:
        self._message_handler = fn
        return fn

    def command(self, command_type: str) -> Callable[[Callable], Callable]:
        def decorate(fn: Callable) -> Callable:
            self._commands.handlers[command_type] = fn
            return fn
        return decorate

    def on_status(self, fn: Callable) -> Callable:
        self._status_callbacks.append(fn)
        return fn

    # --- control ------------------------------------------------------------------------------

    def set_busy(self, busy: bool = True) -> None:
        self._busy = busy

    def stop(self) -> None:
        """Graceful stop; safe to call from any thread or a signal handler."""
        self._stop_requested = True
        if self._loop is not None and self._stopping is not None:
            self._loop.call_soon_threadsafe(self._stopping.set)

    def run(self) -> None:
        asyncio.run(self._run_with_signals())

    async def _run_with_signals(self) -> None:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError):  # Windows has no loop signal handlers
                loop.add_signal_handler(sig, self.stop)
        await self.serve()

    async def publish(self, guild_id: str, payload: dict, format: str = protocol.TEXT_FORMAT,
                      in_response_to: Any = None, conversation_id: Any = None) -> None:
        """Send a guild message; kept in the outbox and sent after reconnecting if the socket is down."""
        await self._send(protocol.publish(guild_id, payload, format, in_response_to, conversation_id), keep=True)

    # --- connection loop ----------------------------------------------------------------------

    async def serve(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stopping = asyncio.Event()
        if self._stop_requested:
            self._stopping.set()
        self._queue: asyncio.Queue = asyncio.Queue()
        worker = asyncio.create_task(self._message_worker(), name="guildsite-messages")
        backoff = Backoff()
        try:
            while not self._stopping.is_set():
                code, reason = None, ""
                try:
                    async with connect(self.url, additional_headers={"Authorization": f"Bearer {self._key}"},
                                       max_size=16 * 2**20) as ws:
                        code, reason = await self._session(ws)
                except InvalidStatus as exc:  # refused before the upgrade
                    code, reason = exc.response.status_code, str(exc)
                    if code in (401, 403):
                        raise AuthenticationRefused(code, reason) from None
                except (OSError, TimeoutError, InvalidHandshake) as exc:
                    reason = f"{type(exc).__name__}: {exc}"
                if self._stopping.is_set():
                    break
                if code in protocol.CLOSE_REFUSED:
                    raise AuthenticationRefused(code, reason)
                if code == protocol.CLOSE_REPLACED:
                    log.warning("another connection of this agent replaced this one (4409); stopping")
                    break
                if self._registered_at is not None and time.monotonic() - self._registered_at >= STABLE_AFTER_S:
                    backoff.reset()
                delay = backoff.next_delay()
                log.warning("disconnected (%s); reconnecting in %.1f s", f"{code} {reason}" if code else reason, delay)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stopping.wait(), delay)
        finally:
            leftovers = [worker, *self._active]
            for task in leftovers:
                task.cancel()
            await asyncio.gather(*leftovers, return_exceptions=True)
            self._stop_requested = False

    async def _session(self, ws: ClientConnection) -> tuple[int | None, str]:
        self._ws, self._registered, self._registered_at = ws, False, None
        reader = asyncio.create_task(self._read(ws))
        stopper = asyncio.create_task(self._stopping.wait())
        try:
            await ws.send(protocol.encode(protocol.register(self.name, self.version, self.capabilities)))
            await asyncio.wait({reader, stopper}, return_when=asyncio.FIRST_COMPLETED)
            if not reader.done():
                await self._close_gracefully(ws)
                await reader
        except ConnectionClosed:
            pass
        finally:
            for task in (reader, stopper, self._heartbeat_task):
                if task is not None:
                    task.cancel()
            self._ws, self._registered, self._heartbeat_task = None, False, None
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(ws.wait_closed(), 10)
        return ws.close_code, ws.close_reason or ""

    async def _close_gracefully(self, ws: ClientConnection) -> None:
        if self._active:
            await asyncio.wait(set(self._active), timeout=SHUTDOWN_GRACE_S)
        await self._send(protocol.heartbeat("offline"), via=ws)
        await ws.close(protocol.CLOSE_NORMAL)

    async def _read(self, ws: ClientConnection) -> None:
        with contextlib.suppress(ConnectionClosed):
            async for raw in ws:
                frame = protocol.decode(raw)
                if frame is None:
                    log.warning("ignoring a frame that is not a JSON object with a type")
                    continue
                try:
                    await self._dispatch(ws, frame)
                except ConnectionClosed:
                    raise
                except Exception:
                    log.exception("failed to handle a %r frame", frame.get("type"))

    async def _dispatch(self, ws: ClientConnection, frame: dict) -> None:
        kind = frame["type"]
        if kind == "ping":
            await ws.send(protocol.encode(protocol.pong()))
        elif kind == "registered":
            await self._on_registered(ws, frame)
        elif kind == "heartbeat_ack":
            self._interval = float(frame.get("interval_s") or self._interval)
        elif kind == "message":
            if not self._stopping.is_set():  # unacked, so the server delivers it again later
                self._queue.put_nowait((ws, frame))
        elif kind == "command":
            if not self._stopping.is_set():
                await self._send(protocol.command_ack(str(frame.get("command_id"))), via=ws)
                task = await self._commands.accept(frame)
                if task is not None:
                    self._track(task)
        elif kind in ("status_snapshot", "status_update"):
            update = frame.get("agents", []) if kind == "status_snapshot" else frame.get("agent", {})
            for callback in self._status_callbacks:
                try:
                    await invoke(callback, update)
                except Exception:
                    log.exception("status callback raised")
        elif kind == "error":
            log.warning("server error %s: %s", frame.get("code"), frame.get("detail"))
        else:
            log.debug("ignoring frame of type %r", kind)

    async def _on_registered(self, ws: ClientConnection, frame: dict) -> None:
        self.agent_id = frame.get("agent_id")
        self._interval = float(frame.get("heartbeat_interval_s") or self._interval)
        while self._outbox:  # in order; a frame leaves the outbox only once it was sent
            await ws.send(protocol.encode(self._outbox[0]))
            self._outbox.popleft()
        self._registered, self._registered_at = True, time.monotonic()
        log.info("registered as agent %s", self.agent_id)
        if self._status_callbacks:
            await self._send(protocol.subscribe_status(), via=ws)
        self._heartbeat_task = asyncio.create_task(self._heartbeat(ws))

    async def _heartbeat(self, ws: ClientConnection) -> None:
        while True:
            await asyncio.sleep(self._interval)
            metrics: dict = {}
            if self._metrics is not None:
                try:
                    metrics = dict(self._metrics())
                except Exception:
                    log.exception("metrics callable raised")
            await self._send(protocol.heartbeat("busy" if self._busy else "online", metrics), via=ws)

    # --- messages -----------------------------------------------------------------------------

    async def _message_worker(self) -> None:
        # One at a time, in arrival order, so replies keep the order of the messages.
        while True:
            ws, frame = await self._queue.get()
            if ws is not self._ws or self._stopping.is_set():
                continue  # from a closed connection or after stop: the server redelivers it
            await self._track(asyncio.create_task(self._handle_message(ws, frame)))

    async def _handle_message(self, ws: ClientConnection, frame: dict) -> None:
        body = frame.get("message") or {}
        guild_id = frame.get("guild_id")
        key = (str(guild_id), str(body.get("id")))
        if key in self._seen:
            log.debug("duplicate message %s in guild %s", key[1], key[0])
        else:
            self._seen.put(key)  # before handling: a handler that raises does not get it again
            msg = IncomingMessage(guild_id, body.get("id"), body.get("format", ""), body.get("payload") or {},
                                  body.get("sender") or {}, body, str(frame.get("delivery_id")), self)
            if self._message_handler is None:
                log.warning("message %s dropped: no on_message handler", msg.id)
            else:
                try:
                    await invoke(self._message_handler, msg)
                except Exception:
                    log.exception("message handler raised for message %s", msg.id)
        await self._send(protocol.ack(str(frame.get("delivery_id"))), via=ws)

    # --- sending ------------------------------------------------------------------------------

    def _track(self, task: asyncio.Task) -> asyncio.Task:
        self._active.add(task)
        task.add_done_callback(self._active.discard)
        return task

    async def _send(self, frame: dict, *, keep: bool = False, via: ClientConnection | None = None) -> bool:
        """Send on the registered connection (only on `via` if given); on failure keep it in the outbox if asked."""
        ws = self._ws if self._registered else None
        if ws is not None and (via is None or via is ws):
            try:
                await ws.send(protocol.encode(frame))
                return True
            except ConnectionClosed:
                pass
        if keep:
            if len(self._outbox) == self._outbox.maxlen:  # the oldest makes room: say so, never silently
                log.warning("outbox full (%d frames waiting for a connection): dropping the oldest %s frame",
                            len(self._outbox), self._outbox[0].get("type"))
            self._outbox.append(frame)
        return False
