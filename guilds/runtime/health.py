"""Agent health: heartbeats, the guild's health report, and what it means for the guild status.

The manager asks every agent for a heartbeat on a schedule (GUILDSITE_HEARTBEAT_INTERVAL).
An agent answers from its own message queue, so one stuck in a handler does not answer;
silent for longer than GUILDSITE_HEARTBEAT_TIMEOUT, it is `unresponsive` and the guild
turns WARNING, back to RUNNING when it answers again.

User proxies do not heartbeat: a guild of N users would pay N heartbeats every interval. A proxy
is up from the moment it started, and `unresponsive` if the engine no longer runs it. Their health
lives in their database rows (written when it changes); the table holds only the proxies that are
not well, so what the manager keeps between messages stays the size of the guild's own agents.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any

from guilds.models import AgentKind, AgentStatus, GuildStatus

OK = "ok"
STARTING = "starting"
WARNING = "warning"
ERROR = "error"
UNRESPONSIVE = "unresponsive"
STOPPED = "stopped"


def iso_now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def iso_from_ms(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def heartbeat_payload(*, checktime: str, observed_latency_ms: float, qos_latency: int | None, status: str = OK,
                      detail: str = "") -> dict:
    meta: dict[str, Any] = {"qos_latency": qos_latency, "observed_latency": round(observed_latency_ms, 3)}
    if detail:  # why an agent that answers is not well (an external agent that is offline)
        meta["detail"] = detail
    return {"checktime": checktime, "checkstatus": status, "responsetime": iso_now(), "checkmeta": meta}


@dataclass
class AgentHealth:
    agent_id: str
    name: str
    kind: str
    status: str = STARTING
    heartbeat: dict[str, Any] | None = None
    last_seen: float = field(default_factory=time.time)  # wall clock: compared across processes
    detail: str = ""


# A proxy row's status as a health status.
_FROM_ROW = {AgentStatus.RUNNING: OK, AgentStatus.STARTING: STARTING, AgentStatus.UNRESPONSIVE: UNRESPONSIVE,
             AgentStatus.ERROR: ERROR, AgentStatus.STOPPED: STOPPED}


def proxy_entry(agent_id: str, name: str, status: str, detail: str, updated_at: datetime) -> AgentHealth:
    """A user proxy's health from its row (guilds.runtime.store.user_proxies)."""
    return AgentHealth(agent_id=agent_id, name=name, kind=AgentKind.HUMAN, status=_FROM_ROW.get(status, STARTING),
                       last_seen=updated_at.timestamp(), detail=detail)


class HealthTable:
    """What the manager knows of its agents' health; the report and the guild status follow from it."""

    def __init__(self) -> None:
        self.agents: dict[str, AgentHealth] = {}

    def expect(self, agent_id: str, name: str, kind: str) -> None:
        entry = self.agents.get(agent_id)
        if entry is None:
            self.agents[agent_id] = AgentHealth(agent_id=agent_id, name=name, kind=kind)
        else:
            entry.status, entry.last_seen = STARTING, time.time()

    def export(self) -> dict[str, Any]:
        return {agent_id: asdict(entry) for agent_id, entry in self.agents.items()}

    @classmethod
    def restore(cls, data: dict[str, Any]) -> HealthTable:
        table = cls()
        table.agents = {agent_id: AgentHealth(**entry) for agent_id, entry in data.items()}
        return table

    def forget(self, agent_id: str) -> None:
        self.agents.pop(agent_id, None)

    def beat(self, agent_id: str, heartbeat: dict[str, Any]) -> bool:
        """Record a heartbeat; True if the agent's status changed."""
        entry = self.agents.get(agent_id)
        if entry is None:
            return False
        previous = entry.status
        entry.heartbeat = heartbeat
        entry.status = heartbeat.get("checkstatus", OK) if heartbeat.get("checkstatus") in (OK, WARNING) else OK
        entry.last_seen = time.time()
        previous_detail, entry.detail = entry.detail, str((heartbeat.get("checkmeta") or {}).get("detail") or "")
        return previous != entry.status or previous_detail != entry.detail

    def failed(self, agent_id: str, detail: str) -> None:
        entry = self.agents.get(agent_id)
        if entry is not None:
            entry.status, entry.detail = ERROR, detail

    def sweep(self, timeout: float) -> list[str]:
        """Mark unresponsive the agents silent for longer than `timeout`; return the newly marked.
        (User proxies answer no heartbeats: the manager checks them against what the engine runs.)"""
        now = time.time()
        marked: list[str] = []
        for entry in self.agents.values():
            if entry.kind != AgentKind.HUMAN and entry.status in (OK, WARNING, STARTING) \
                    and now - entry.last_seen > timeout:
                entry.status = UNRESPONSIVE
                entry.detail = f"no heartbeat for {now - entry.last_seen:.1f}s"
                marked.append(entry.agent_id)
        return marked

    def guild_health(self) -> str:
        statuses = [e.status for e in self.agents.values()]
        if not statuses:
            return OK  # nothing of the guild's own and every proxy well (the well ones are not kept here)
        if all(status == STOPPED for status in statuses):
            return STOPPED
        if ERROR in statuses:
            return ERROR
        if UNRESPONSIVE in statuses or WARNING in statuses:
            return WARNING
        if STARTING in statuses:
            return STARTING
        return OK

    def guild_status(self, current: str) -> str:
        """The persisted guild status the table implies, given the current one."""
        health = self.guild_health()
        if health == ERROR:
            return GuildStatus.ERROR if current in (GuildStatus.STARTING, GuildStatus.PENDING_LAUNCH) else GuildStatus.WARNING
        if health == WARNING:
            return GuildStatus.WARNING
        if health == OK:
            return GuildStatus.RUNNING
        if health == STOPPED:
            return GuildStatus.STOPPED
        # Someone is starting: a new joiner does not take a running guild out of RUNNING.
        return current

    def problems(self) -> str:
        return "; ".join(
            f"{e.name} ({e.agent_id}) {e.status}{': ' + e.detail if e.detail else ''}"
            for e in self.agents.values()
            if e.status not in (OK, STARTING)
        )

    def report(self, *, guild_status: str, proxies: Iterable[AgentHealth] = ()) -> dict[str, Any]:
        """The AgentsHealthReport payload: the guild's agents, and the user proxies given (those in the
        table, which are not well, win over their rows)."""
        agents: dict[str, Any] = {}
        proxies = [entry for entry in proxies if entry.agent_id not in self.agents]
        for entry in [*self.agents.values(), *proxies]:
            # Seed 000's four fields, always: before its first heartbeat, an agent shows when it was expected.
            since = iso_from_ms(int(entry.last_seen * 1000))
            beat = dict(entry.heartbeat or {"checktime": since, "responsetime": since,
                                            "checkmeta": {"qos_latency": None, "observed_latency": None}})
            beat["checkstatus"] = entry.status
            beat["name"] = entry.name
            beat["kind"] = entry.kind
            agents[entry.agent_id] = beat
        return {"agents": agents, "guild_health": self.guild_health(), "guild_status": guild_status}
