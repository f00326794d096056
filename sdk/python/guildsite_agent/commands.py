"""Running commands: one task each, with timeouts, cancellation and remembered results."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

from . import protocol
from .invoke import invoke
from .lru import BoundedLRU
from .models import Command, CommandFailed

log = logging.getLogger("guildsite_agent")


class CommandRunner:
    def __init__(self, send: Callable[[dict], Awaitable[Any]], remember: int = 1000):
        self.handlers: dict[str, Callable] = {}
        self.running: dict[str, asyncio.Task] = {}
        self.finished = BoundedLRU(remember)  # command id -> result frame, re-sent on redelivery
        self._send = send

    async def accept(self, frame: dict) -> asyncio.Task | None:
        """Start the command of `frame`, or answer it at once; returns the task when one started."""
        cmd_id = str(frame.get("command_id"))
        if cmd_id in self.running:
            return None
        stored = self.finished.get(cmd_id)
        if stored is not None:
            await self._send(stored)
            return None
        if frame.get("is_cancellation"):
            await self._finish(self._cancel(cmd_id, str(frame.get("content") or "")))
            return None
        cmd_type = str(frame.get("command_type") or "")
        handler = self.handlers.get(cmd_type)
        if handler is None:
            await self._finish(protocol.command_result(cmd_id, False, error_message=f"unknown command type '{cmd_type}'"))
            return None
        timeout = frame.get("timeout_s")
        cmd = Command(cmd_id, cmd_type, str(frame.get("content") or ""), frame.get("parameters") or {},
                      int(timeout) if timeout else None)
        # The handler gets a task of its own, so a cancellation command can cancel it even before it started
        # (a task cancelled before its first step never enters its body, and so could not report).
        work = asyncio.create_task(invoke(handler, cmd), name=f"command-{cmd_id}")
        self.running[cmd_id] = work
        task = asyncio.create_task(self._execute(cmd, work))
        task.add_done_callback(lambda _: (work.cancel(), self.running.pop(cmd_id, None)))
        return task

    def _cancel(self, cmd_id: str, target: str) -> dict:
        task = self.running.get(target)
        if task is None:
            return protocol.command_result(cmd_id, False, error_message="not running")
        task.cancel()
        return protocol.command_result(cmd_id, True, output="cancelled")

    async def _execute(self, cmd: Command, work: asyncio.Task) -> None:
        started = time.monotonic()
        fields: dict[str, Any]
        try:
            result = await asyncio.wait_for(work, cmd.timeout_s)
            fields = _result_fields(result)
        except TimeoutError:
            fields = {"success": False, "error_message": f"timed out after {cmd.timeout_s} s"}
        except CommandFailed as exc:
            fields = {"success": False, "error_message": exc.message, "exit_code": exc.exit_code, "output": exc.output}
        except asyncio.CancelledError:
            if asyncio.current_task().cancelling():
                raise  # we are being cancelled (shutdown), not the handler by a cancellation command
            fields = {"success": False, "error_message": "cancelled"}
        except Exception as exc:
            log.exception("command %s (%s) raised", cmd.id, cmd.type)
            fields = {"success": False, "error_message": f"{type(exc).__name__}: {exc}"}
        elapsed = int((time.monotonic() - started) * 1000)
        await self._finish(protocol.command_result(cmd.id, execution_time_ms=elapsed, **fields))

    async def _finish(self, result: dict) -> None:
        self.finished.put(result["command_id"], result)
        await self._send(result)


def _result_fields(result: Any) -> dict[str, Any]:
    """A handler returns a str (the output), a dict {"output", "exit_code", "error_message"?}, or None."""
    if isinstance(result, dict):
        exit_code = result.get("exit_code")
        return {"success": exit_code in (None, 0), "output": str(result.get("output") or ""),
                "exit_code": exit_code, "error_message": str(result.get("error_message") or "")}
    return {"success": True, "output": "" if result is None else str(result)}
