"""Seed 003's way, over gRPC (`pip install guildsite-agent[grpc]`): register, heartbeat at the interval the server
answers, and run commands from the `ReceiveCommands` stream, reporting each result with `SendCommandResult`.

Messages for agents stay on the WebSocket (`Agent`); a program that only runs commands needs no more than this:

    agent = GrpcAgent("127.0.0.1:50051", key, name="runner")

    @agent.command("run")
    async def run(cmd): return "done"

    agent.run()
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import platform
import signal
import socket
from collections.abc import Callable

import grpc

from .backoff import Backoff
from .commands import CommandRunner
from .models import AuthenticationRefused
from .protos import agent_registration_service_pb2 as reg
from .protos import agent_registration_service_pb2_grpc as reg_grpc

log = logging.getLogger("guildsite_agent")

REFUSED = (grpc.StatusCode.UNAUTHENTICATED, grpc.StatusCode.NOT_FOUND)


class GrpcAgent:
    def __init__(self, target: str, key: str, *, name: str = "guildsite-agent", version: str = "0.0.0",
                 capabilities: dict[str, str] | None = None, metrics: Callable[[], dict] | None = None):
        self.target, self._key = target, key
        self.name, self.version, self.capabilities = name, version, dict(capabilities or {})
        self._metrics = metrics
        self.agent_id: str | None = None
        self.interval = 30.0
        self._busy = False
        self._commands = CommandRunner(self._report)
        self._stub: reg_grpc.AgentRegistrationServiceStub | None = None
        self._stopping: asyncio.Event | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def command(self, command_type: str) -> Callable[[Callable], Callable]:
        def decorate(fn: Callable) -> Callable:
            self._commands.handlers[command_type] = fn
            return fn
        return decorate

    def set_busy(self, busy: bool = True) -> None:
        self._busy = busy

    def stop(self) -> None:
        """Graceful stop; safe from any thread or a signal handler."""
        if self._loop is not None and self._stopping is not None:
            self._loop.call_soon_threadsafe(self._stopping.set)

    def run(self) -> None:
        async def main() -> None:
            loop = asyncio.get_running_loop()
            for signum in (signal.SIGINT, signal.SIGTERM):
                with contextlib.suppress(NotImplementedError):
                    loop.add_signal_handler(signum, self.stop)
            await self.serve()
        asyncio.run(main())

    @property
    def _metadata(self) -> list[tuple[str, str]]:
        return [("authorization", f"Bearer {self._key}")]

    async def serve(self) -> None:
        """Until stop(); AuthenticationRefused when the server refuses the key."""
        self._loop, self._stopping = asyncio.get_running_loop(), asyncio.Event()
        backoff = Backoff()
        async with grpc.aio.insecure_channel(self.target) as channel:
            self._stub = reg_grpc.AgentRegistrationServiceStub(channel)
            try:
                while not self._stopping.is_set():
                    try:
                        await self._session(backoff)
                    except grpc.aio.AioRpcError as error:
                        if error.code() in REFUSED:
                            raise AuthenticationRefused(4401 if error.code() == REFUSED[0] else 4403,
                                                        error.details() or "") from None
                        delay = backoff.next_delay()
                        log.warning("gRPC session ended (%s); again in %.1f s", error.code().name, delay)
                        with contextlib.suppress(TimeoutError):
                            await asyncio.wait_for(self._stopping.wait(), delay)
            finally:
                if self.agent_id is not None:
                    with contextlib.suppress(grpc.aio.AioRpcError):
                        await self._stub.UnregisterAgent(reg.AgentUnregistrationRequest(agent_id=self.agent_id),
                                                         metadata=self._metadata, timeout=5)

    async def _session(self, backoff: Backoff) -> None:
        answer = await self._stub.RegisterAgent(reg.AgentRegistrationRequest(
            agent_name=self.name, version=self.version, capabilities=self.capabilities, hostname=socket.gethostname(),
            platform=platform.platform()), metadata=self._metadata, timeout=10)
        self.agent_id = answer.server_assigned_id
        log.info("registered over gRPC as agent %s", self.agent_id)
        backoff.reset()
        beats = asyncio.create_task(self._heartbeats())
        stream = self._stub.ReceiveCommands(reg.ReceiveCommandsRequest(agent_id=self.agent_id),
                                            metadata=self._metadata)
        stopper = asyncio.create_task(self._stopping.wait())
        try:
            reading = asyncio.create_task(self._read(stream))
            done, _ = await asyncio.wait({reading, stopper, beats}, return_when=asyncio.FIRST_COMPLETED)
            for task in done:
                if task is not stopper and task.exception() is not None:
                    raise task.exception()
        finally:
            stream.cancel()
            for task in (beats, stopper, reading):
                task.cancel()

    async def _read(self, stream) -> None:
        async for command in stream:
            # The WebSocket's command frame, which the runner reads (gRPC's Command carries no timeout).
            await self._commands.accept({"command_id": command.command_id, "command_type": command.type,
                                         "content": command.content, "parameters": dict(command.parameters),
                                         "is_cancellation": command.is_cancellation})

    async def _heartbeats(self) -> None:
        while True:
            metrics = {}
            if self._metrics is not None:
                try:
                    metrics = {str(k): str(v) for k, v in dict(self._metrics()).items()}
                except Exception:
                    log.exception("metrics callable raised")
            answer = await self._stub.SendHeartbeat(reg.HeartbeatRequest(
                agent_id=self.agent_id, status="BUSY" if self._busy else "ONLINE", metrics=metrics),
                metadata=self._metadata, timeout=10)
            self.interval = float(answer.interval or self.interval)
            await asyncio.sleep(self.interval)  # the interval the server asks for

    async def _report(self, frame: dict) -> None:
        """The runner's frames: results go to SendCommandResult (acks have no gRPC counterpart)."""
        if frame.get("type") != "command_result":
            return
        await self._stub.SendCommandResult(reg.CommandResult(
            command_id=frame["command_id"], agent_id=self.agent_id or "", success=bool(frame["success"]),
            output=frame.get("output") or "", error_message=frame.get("error_message") or "",
            exit_code=_int32(int(frame.get("exit_code") or 0)),
            execution_time_ms=int(frame.get("execution_time_ms") or 0)),
            metadata=self._metadata, timeout=10)


def _int32(code: int) -> int:
    """The proto's exit_code is 32 bits: a larger code (Windows' NTSTATUS) goes as its signed 32-bit form."""
    return ((code + 2**31) % 2**32) - 2**31
