"""Cancelling a run: the request may reach any process (a socket, the REST API), the run may be going on in
any other (a Celery worker), so the request is a flag in the site's cache (Redis in production, this
process's memory in the embedded setup, where everything runs in one process) that the run looks for while
its work goes on."""

from __future__ import annotations

import asyncio
from typing import Any

from django.conf import settings
from django.core.cache import cache

from messaging.tasks import cancel_and_wait

# Long enough for any run to notice; a run that ended meanwhile never looks again.
FLAG_SECONDS = 3600


def _key(run_id: str) -> str:
    return f"run-cancel:{run_id}"


def request_cancel(run_id: str) -> None:
    cache.set(_key(run_id), 1, timeout=FLAG_SECONDS)


def cancel_flagged(run_id: str) -> bool:
    return bool(cache.get(_key(run_id)))


async def cancel_requested(run_id: str) -> bool:
    # Not cache.aget: that runs on the one thread Django's sync_to_async shares with database calls.
    return bool(await asyncio.to_thread(cache.get, _key(run_id)))


async def unless_cancelled(run_id: str, work: asyncio.Future[Any]) -> bool:
    """Wait for `work`, cancelling it if the run's cancel is requested first. True when it was cancelled so;
    otherwise `work` is done (its result or exception for the caller to take)."""
    try:
        while not work.done():
            await asyncio.wait({work}, timeout=settings.GUILDSITE_RUN_CANCEL_POLL_SECONDS)
            if not work.done() and await cancel_requested(run_id) and not work.done():
                await cancel_and_wait(work)
                return True
        return False
    except asyncio.CancelledError:  # the caller is stopped: its work with it
        work.cancel()
        raise
