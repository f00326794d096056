"""Stopping an asyncio task from another one."""

from __future__ import annotations

import asyncio
from typing import Any


async def cancel_and_wait(task: asyncio.Future[Any]) -> None:
    """Cancel `task` and wait until it has ended, absorbing its CancelledError but never the caller's: a bare
    `suppress(CancelledError)` around the wait also swallows the caller being cancelled meanwhile, and the
    caller then runs on as if nothing had asked it to stop (a shutdown waiting on it waits for ever)."""
    current = asyncio.current_task()
    cancels_before = current.cancelling() if current is not None else 0  # a clean-up may run inside a cancel
    task.cancel()
    try:
        await task
    except asyncio.CancelledError:
        pass
    finally:
        # Cancelled while waiting: asyncio hands that cancel on to `task`, so how `task` ended (a result, an
        # error, its own CancelledError) says nothing of it; the count does.
        if current is not None and current.cancelling() > cancels_before:
            raise asyncio.CancelledError
