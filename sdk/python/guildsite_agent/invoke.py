"""Call a user handler, whether it is async or plain."""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Callable
from typing import Any


async def invoke(fn: Callable, *args: Any) -> Any:
    if inspect.iscoroutinefunction(fn):
        return await fn(*args)
    # Plain handlers run in a thread so a slow one can't stall heartbeats and pings.
    result = await asyncio.to_thread(fn, *args)
    # An object with an async __call__ lands here and hands back a coroutine: run it on the loop.
    return await result if inspect.isawaitable(result) else result
