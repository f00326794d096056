"""When an open socket looks at its rights again: every GUILDSITE_WS_RECHECK_SECONDS (the first time after a random
part of it, so sockets opened together do not all check together), and at once when its credential expires."""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import AsyncIterator, Callable

from django.conf import settings

from guildsite.identity import Actor


async def rights_checks(current_actor: Callable[[], Actor]) -> AsyncIterator[None]:
    """Yields each time a check is due; `current_actor` is asked each round (a check may renew the credential)."""
    interval = settings.GUILDSITE_WS_RECHECK_SECONDS
    wait = random.uniform(0.5, 1.0) * interval
    while True:
        expires_at = current_actor().expires_at
        if expires_at is not None:
            wait = min(wait, max(0.0, expires_at - time.time()))
        await asyncio.sleep(wait)
        wait = interval
        yield
