"""The process's runtime event loop: where buses and in-process agents live.

Agents must outlive the request or socket that started them, so they run on one
long-lived loop per process, in a daemon thread. Sync code (views, the admin,
management commands) and other loops (socket consumers) reach it through `run`,
`arun` and `submit`. Under daphne the server's own loop is installed instead
(`install`, from guildsite.startup), which saves two thread hops per message.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextvars
import os
import threading
from collections.abc import Coroutine
from typing import Any, TypeVar

T = TypeVar("T")

_lock = threading.Lock()
_loop: asyncio.AbstractEventLoop | None = None


def _forget_in_child() -> None:
    # A forked child (a Celery worker process) must not reuse its parent's loop, whose thread it does not have.
    global _loop, _lock
    _loop, _lock = None, threading.Lock()


os.register_at_fork(after_in_child=_forget_in_child)


def _start_thread() -> asyncio.AbstractEventLoop:
    loop = asyncio.new_event_loop()
    ready = threading.Event()

    def serve() -> None:
        asyncio.set_event_loop(loop)
        loop.call_soon(ready.set)
        loop.run_forever()

    threading.Thread(target=serve, name="guildsite-runtime", daemon=True).start()
    ready.wait()
    return loop


def runtime_loop() -> asyncio.AbstractEventLoop:
    loop = _loop
    if loop is not None and not loop.is_closed():
        return loop
    return _started()


def _started() -> asyncio.AbstractEventLoop:
    global _loop
    with _lock:
        if _loop is None or _loop.is_closed():
            _loop = _start_thread()
        return _loop


def install(loop: asyncio.AbstractEventLoop) -> None:
    """Use `loop` (a server's own, long-lived loop) as the runtime loop of this process."""
    global _loop
    with _lock:
        if _loop is not None and _loop is not loop:
            raise RuntimeError("a runtime loop is already running in this process")
        _loop = loop


def in_loop(loop: asyncio.AbstractEventLoop) -> bool:
    try:
        return asyncio.get_running_loop() is loop
    except RuntimeError:
        return False


def in_runtime_loop() -> bool:
    return in_loop(runtime_loop())


def submit(coro: Coroutine[Any, Any, T]) -> concurrent.futures.Future[T]:
    # An empty context: a caller's context (asgiref's, inside a request) must not follow the
    # coroutine onto the runtime loop, or its sync calls would be sent back to the request's thread.
    return contextvars.Context().run(asyncio.run_coroutine_threadsafe, coro, runtime_loop())


def run(coro: Coroutine[Any, Any, T], timeout: float | None = 30) -> T:
    """Run `coro` on the runtime loop and wait for it (from sync code in any other thread)."""
    if in_runtime_loop():
        coro.close()
        raise RuntimeError("run() would deadlock: already on the runtime loop, await instead")
    _give_back_pooled_connections()
    return submit(coro).result(timeout)


def _give_back_pooled_connections() -> None:
    """A thread about to wait on the runtime loop first hands its pooled database connection back (the web process
    pools them): the runtime's database threads take theirs from the same pool, and one held by every waiting
    request would leave them none. Not inside a transaction, which needs its connection."""
    from django.db import connections

    for connection in connections.all(initialized_only=True):
        if connection.connection is not None and not connection.in_atomic_block and \
                connection.settings_dict.get("OPTIONS", {}).get("pool"):
            connection.close()


async def arun(coro: Coroutine[Any, Any, T]) -> T:
    """Await `coro` on the runtime loop from any event loop (in an empty context, as `submit`)."""
    loop = runtime_loop()
    if in_loop(loop):
        return await loop.create_task(coro, context=contextvars.Context())
    return await asyncio.wrap_future(submit(coro))
