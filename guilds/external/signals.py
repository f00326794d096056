"""Wake-ups for external agents' sockets, on the site's live bus (any process publishes, the socket's process
hears). A wake-up carries nothing: the socket reads the database, so one that is lost costs a delay until the
socket's next periodic look, never a message."""

from __future__ import annotations

from guilds.runtime import live

WORK = "external_work"  # a message or a command waits
STATUS = "external_status"  # an agent of the organisation changed status (the payload is its status entry)


def work_topic(agent_id: str) -> str:
    # Not a topic /api/ws lets anyone follow (guilds.sockets.live_topics knows no `external:` kind).
    return f"external:{agent_id}"


def status_topic(organization_id: str) -> str:
    return f"external-status:{organization_id}"


async def work_waits(agent_id: str, *, connection: str = "") -> None:
    """Something waits for the agent; with `connection`, that connection registered (older ones close)."""
    await live.publish(WORK, {"agent_id": agent_id, "connection": connection}, [work_topic(agent_id)])


async def status_changed(organization_id: str, entry: dict) -> None:
    await live.publish(STATUS, entry, [status_topic(organization_id)])
