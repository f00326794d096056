"""Which users have a user socket open on which guild, in this web process: a system socket withholds
"ok" while its user's socket is being set up (guilds.consumers.SysCommsConsumer)."""

from __future__ import annotations

from collections import Counter

_open: Counter[tuple[str, str]] = Counter()


def opened(guild_id: str, user_id: str) -> None:
    _open[(guild_id, user_id)] += 1


def closed(guild_id: str, user_id: str) -> None:
    key = (guild_id, user_id)
    _open[key] -= 1
    if _open[key] <= 0:
        del _open[key]


def has(guild_id: str, user_id: str) -> bool:
    return _open[(guild_id, user_id)] > 0
