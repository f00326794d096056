"""Guild status transitions: which moves are allowed, defined once.

Seed 000's table, plus what a running platform needs (documented in the README):
- any live status → PENDING_LAUNCH: a relaunch (server restart, or out of ERROR);
- REQUESTED/PENDING_LAUNCH/STARTING/WARNING → STOPPED: a stop before or while unhealthy;
- RUNNING → STARTING: a new agent (a user's proxy) joins and has not answered yet is *not* a
  status change; the guild stays RUNNING and the report says which agent is starting.
STOPPED is final.
"""

from __future__ import annotations

from guilds.models import GuildStatus as S

ALLOWED: dict[str, frozenset[str]] = {
    S.REQUESTED: frozenset({S.PENDING_LAUNCH, S.ERROR, S.STOPPED}),
    S.PENDING_LAUNCH: frozenset({S.STARTING, S.ERROR, S.STOPPED}),
    S.STARTING: frozenset({S.RUNNING, S.WARNING, S.ERROR, S.STOPPED, S.PENDING_LAUNCH}),
    S.RUNNING: frozenset({S.WARNING, S.STOPPED, S.ERROR, S.PENDING_LAUNCH}),
    S.WARNING: frozenset({S.RUNNING, S.ERROR, S.STOPPED, S.PENDING_LAUNCH}),
    S.ERROR: frozenset({S.STOPPED, S.PENDING_LAUNCH}),
    S.STOPPED: frozenset(),
}

# Statuses in which a guild's agents should be running (relaunched after a restart).
LIVE = frozenset({S.REQUESTED, S.PENDING_LAUNCH, S.STARTING, S.RUNNING, S.WARNING})


def predecessors(target: str) -> list[str]:
    return [source for source, targets in ALLOWED.items() if target in targets]


def can_move(source: str, target: str) -> bool:
    return target in ALLOWED.get(source, frozenset())
