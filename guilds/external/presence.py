"""Whether an external agent is there: online, busy or offline, what it said of itself, and who is told.

The socket writes what the agent says (register, heartbeats, going away); an agent last heard from longer ago
than GUILDSITE_EXTERNAL_MISSED_HEARTBEATS intervals is offline whatever its row says (a server that died
with the socket open wrote nothing). A change is told to: each guild seating the agent (a status message on
its status topic, which system sockets relay, and a health check of the seat, so the guild's health and status
follow at once: WARNING with the reason while the agent is offline), `/api/ws` (`agent_status` on the seat's
`agent:` and `guild:` topics and on `org:{id}`), and the agents that subscribed to status.
"""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.utils import timezone

from guilds.engines import bus_of
from guilds.external import registry, signals
from guilds.models import ExternalAgent, ExternalStatus
from guilds.runtime import formats, live
from messaging import topics as topic_names
from messaging.ids import Priority
from messaging.message import AgentTag, Message

logger = logging.getLogger(__name__)

PRESENCE_TAG = AgentTag(id="guildsite.external", name="external agents")
REPORTED_STATUSES = frozenset({ExternalStatus.ONLINE, ExternalStatus.BUSY})
METADATA_LIMITS = {"name": 128, "version": 64, "hostname": 255, "platform": 255}
CAPABILITIES_MAX = 64
METRICS_MAX_KEYS = 64


def heartbeat_interval() -> float:
    return settings.GUILDSITE_EXTERNAL_HEARTBEAT_SECONDS


def offline_after() -> timedelta:
    return timedelta(seconds=heartbeat_interval() * settings.GUILDSITE_EXTERNAL_MISSED_HEARTBEATS)


def effective_status(agent: ExternalAgent) -> str:
    if agent.status == ExternalStatus.OFFLINE:
        return ExternalStatus.OFFLINE
    if agent.last_seen_at is None or timezone.now() - agent.last_seen_at > offline_after():
        return ExternalStatus.OFFLINE
    return agent.status


def offline_reason(agent: ExternalAgent) -> str:
    return f"external agent {agent.name} ({agent.pk}) is offline"


def status_entry(agent: ExternalAgent) -> dict[str, Any]:
    """An agent's status as status subscribers, REST and the admin show it."""
    return {"agent_id": agent.pk, "name": agent.name, "organization_id": agent.organization_id,
            "status": effective_status(agent), "version": agent.version, "capabilities": agent.capabilities,
            "hostname": agent.hostname, "platform": agent.platform, "metrics": agent.metrics,
            "last_seen_at": agent.last_seen_at.isoformat() if agent.last_seen_at else None}


def _text(value: Any, limit: int) -> str:
    return value[:limit] if isinstance(value, str) else ""


def registration_metadata(frame: dict[str, Any]) -> dict[str, Any]:
    """What a `register` frame says of the agent, cut to size (the name is the registration's, not the frame's)."""
    capabilities = frame.get("capabilities")
    capabilities = [c[:128] for c in capabilities if isinstance(c, str)][:CAPABILITIES_MAX] \
        if isinstance(capabilities, list) else []
    return {"version": _text(frame.get("version"), METADATA_LIMITS["version"]), "capabilities": capabilities,
            "hostname": _text(frame.get("hostname"), METADATA_LIMITS["hostname"]),
            "platform": _text(frame.get("platform"), METADATA_LIMITS["platform"])}


def metrics_of(frame: dict[str, Any]) -> dict[str, Any]:
    metrics = frame.get("metrics")
    if not isinstance(metrics, dict):
        return {}
    return {str(k)[:64]: v for k, v in list(metrics.items())[:METRICS_MAX_KEYS]
            if isinstance(v, (int, float, str, bool)) and (not isinstance(v, str) or len(v) <= 256)}


# --- what the socket writes (blocking) ---------------------------------------------------------


def agent_connected(agent_id: str, connection_id: str, metadata: dict[str, Any]) -> tuple[ExternalAgent, str]:
    """(the agent now, the connection it replaces or "")."""
    agent = ExternalAgent.objects.get(pk=agent_id)
    replaced = agent.connection_id
    ExternalAgent.objects.filter(pk=agent_id).update(status=ExternalStatus.ONLINE, connection_id=connection_id,
                                                     last_seen_at=timezone.now(), **metadata)
    agent.refresh_from_db()
    return agent, replaced


def agent_heartbeat(agent_id: str, connection_id: str, status: str, metrics: dict[str, Any]
                    ) -> tuple[ExternalAgent | None, bool]:
    """(the agent now or None if another connection has replaced this one, whether its status changed)."""
    agent = ExternalAgent.objects.filter(pk=agent_id, connection_id=connection_id).first()
    if agent is None:
        return None, False
    before = effective_status(agent)
    ExternalAgent.objects.filter(pk=agent_id, connection_id=connection_id).update(
        status=status, metrics=metrics, last_seen_at=timezone.now())
    agent.refresh_from_db()
    return agent, effective_status(agent) != before


def agent_seen(agent_id: str, status: str, metrics: dict[str, Any] | None = None,
               metadata: dict[str, Any] | None = None) -> tuple[ExternalAgent, bool]:
    """What a connectionless transport (gRPC) says of the agent: its status now, and optionally its metrics and
    registration metadata; (the agent now, whether its status changed). Offline once its heartbeats stop."""
    agent = ExternalAgent.objects.get(pk=agent_id)
    before = effective_status(agent)
    fields: dict[str, Any] = {"status": status, "last_seen_at": timezone.now(), **(metadata or {})}
    if metrics is not None:
        fields["metrics"] = metrics
    ExternalAgent.objects.filter(pk=agent_id).update(**fields)
    for name, value in fields.items():  # as stored, without reading it back
        setattr(agent, name, value)
    return agent, effective_status(agent) != before


def agent_disconnected(agent_id: str, connection_id: str) -> ExternalAgent | None:
    """Offline, unless a newer connection took over; the agent if it went offline now."""
    updated = ExternalAgent.objects.filter(pk=agent_id, connection_id=connection_id).update(
        status=ExternalStatus.OFFLINE, connection_id="")
    return ExternalAgent.objects.filter(pk=agent_id).first() if updated else None


def agents_gone_quiet() -> list[ExternalAgent]:
    """Agents online or busy by their rows but not heard from for longer than offline_after(): now offline by their
    rows too (each once: a heartbeat that lands meanwhile keeps its agent online). The ones that went offline."""
    quiet = list(ExternalAgent.objects.filter(status__in=REPORTED_STATUSES,
                                              last_seen_at__lt=timezone.now() - offline_after())[:1000])
    gone = []
    for agent in quiet:
        if ExternalAgent.objects.filter(pk=agent.pk, status=agent.status, last_seen_at=agent.last_seen_at).update(
                status=ExternalStatus.OFFLINE):
            agent.status = ExternalStatus.OFFLINE
            gone.append(agent)
    return gone


async def sweep() -> int:
    """Tell whoever follows them that the agents gone quiet are offline (an agent that speaks only gRPC, or one
    whose server died with its socket open, has nobody else to say so); how many."""
    from channels.db import database_sync_to_async

    gone = await database_sync_to_async(agents_gone_quiet)()
    for agent in gone:
        await announce(agent)
    return len(gone)


def still_connected(agent_id: str, connection_id: str) -> bool:
    return ExternalAgent.objects.filter(pk=agent_id, connection_id=connection_id).exists()


def status_snapshot(organization_id: str) -> list[dict[str, Any]]:
    return [status_entry(agent) for agent in ExternalAgent.objects.filter(organization_id=organization_id)]


# --- telling (async) -----------------------------------------------------------------------------


def _seats(agent_id: str) -> list[tuple[str, dict, str, str]]:
    return [(seat.guild_id, seat.guild.spec, seat.seat_id, seat.seat_name)
            for seat in registry.seats_of(agent_id) if not seat.guild.suspended]


async def announce(agent: ExternalAgent) -> None:
    """Tell everyone who follows the agent that its status is now what its row says. Never raises: the row is
    the record; a status that could not be told is caught up by the next heartbeat round."""
    from channels.db import database_sync_to_async

    from guilds.runtime import loop as runtime_loop

    entry = status_entry(agent)
    detail = offline_reason(agent) if entry["status"] == ExternalStatus.OFFLINE else ""
    at = timezone.now().isoformat()
    await signals.status_changed(agent.organization_id, entry)
    await live.publish(live.AGENT_STATUS, {"external_agent_id": agent.pk, "organization_id": agent.organization_id,
                                           "name": agent.name, "kind": "external", "status": entry["status"],
                                           "detail": detail, "at": at}, [live.org_topic(agent.organization_id)])
    try:
        seats = await database_sync_to_async(_seats)(agent.pk)
    except Exception:
        logger.exception("could not read where an external agent sits", extra={"external_agent_id": agent.pk})
        return
    for guild_id, spec, seat_id, seat_name in seats:
        await live.agent_status(guild_id=guild_id, agent_id=seat_id, name=seat_name, kind="external",
                                status=entry["status"], detail=detail, at=at)
        try:
            await runtime_loop.arun(_tell_guild(guild_id, spec, seat_id, seat_name, entry, detail))
        except Exception:
            logger.warning("could not tell a guild of an external agent's status", exc_info=True,
                           extra={"guild_id": guild_id, "external_agent_id": agent.pk})


async def _tell_guild(guild_id: str, spec: dict, seat_id: str, seat_name: str, entry: dict[str, Any],
                      detail: str) -> None:
    bus = bus_of(guild_id, spec)
    await bus.publish(Message.create(
        sender=PRESENCE_TAG, topics=topic_names.GUILD_STATUS_TOPIC, format=formats.EXTERNAL_AGENT_STATUS,
        payload={"agent_id": seat_id, "name": seat_name, "external_agent_id": entry["agent_id"],
                 "status": entry["status"], "detail": detail}))
    # Its seat answers with a heartbeat saying how the agent is: the guild's health follows now, not at the
    # next round.
    await bus.publish(Message.create(sender=PRESENCE_TAG, topics=topic_names.agent_inbox(seat_id),
                                     format=formats.HEALTH_CHECK_REQUEST, payload={"checktime": entry["last_seen_at"]},
                                     priority=Priority.HIGH))
