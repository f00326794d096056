"""Wake-ups for external agents' sockets, on the site's live bus (any process publishes, the socket's process
hears). The database is the record: a wake-up that is lost costs a delay until the socket's next periodic look,
never a message; one may carry a message, so the socket sends it without reading the queue."""

from __future__ import annotations

from typing import Any

from guilds.runtime import live

WORK = "external_work"  # a message or a command waits
STATUS = "external_status"  # an agent of the organisation changed status (the payload is its status entry)


def work_topic(agent_id: str) -> str:
    # Not a topic /api/ws lets anyone follow (guilds.sockets.live_topics knows no `external:` kind).
    return f"external:{agent_id}"


def status_topic(organization_id: str) -> str:
    return f"external-status:{organization_id}"


async def work_waits(agent_id: str, *, deliveries: list[dict[str, Any]] | None = None, commands: bool = False,
                     connection: str = "", revoked: bool = False) -> None:
    """Something waits for the agent: `deliveries` (each with the message, so the socket need not read it), a
    command, or (neither) anything, to be read from the queue; with `connection`, that connection registered
    (older ones close); `revoked`, the agent was deleted (its socket closes)."""
    payload: dict[str, Any] = {"agent_id": agent_id}
    if deliveries:
        payload["deliveries"] = deliveries
    if commands:
        payload["commands"] = True
    if connection:
        payload["connection"] = connection
    if revoked:
        payload["revoked"] = True
    await live.publish(WORK, payload, [work_topic(agent_id)])


async def status_changed(organization_id: str, entry: dict) -> None:
    await live.publish(STATUS, entry, [status_topic(organization_id)])
