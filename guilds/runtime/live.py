"""Live events (seed 004's `/api/ws`): what changed, told to whoever follows it, as it happens.

The runtime says what happened here, in one place per kind of event; the live socket
(guilds.sockets.live) relays it. An event is published ephemerally on the site's live bus (the
site's messaging backend, namespace LIVE_NAMESPACE): any process may publish, every web process
whose sockets follow one of its topics hears it, nothing is stored. Live events are a view, not a
record: one that cannot be published is logged and dropped, never an error for the work that made it
(the record is in the database, and REST reads it).

Topics, and what goes to each (README "Live socket"):
  user:{username}            run_update of the runs the user asked for
  thread:{id}                thread_message_created, stream_chunk, run_update
  agent:{guild_id}:{agent_id} run_update, agent_status
  guild:{id}                 guild_status, agent_status, run_update, budget_warning
  org:{id}                   guild_status, budget_warning

An event whose data names an `organization_id` reaches only sockets whose user sees that organisation (a
budget_warning: only its admins).
"""

from __future__ import annotations

import asyncio
import logging
import time
import weakref
from typing import Any

import orjson

from guilds.spec import USER_PROXY_ID_PREFIX
from messaging.bus import MessagingInterface
from messaging.message import AgentTag, Message

logger = logging.getLogger(__name__)

# Not a guild id (those are 22 base62 characters), so no guild's topics can meet these.
LIVE_NAMESPACE = "guildsite-live"
PUBLISHER = AgentTag(id="guildsite-live", name="guildsite")
EVENT_MESSAGE_MAX_BYTES = 64 * 1024  # a thread message in an event; longer ones are cut (REST has them whole)

THREAD_MESSAGE_CREATED = "thread_message_created"
STREAM_CHUNK = "stream_chunk"
RUN_UPDATE = "run_update"
GUILD_STATUS = "guild_status"
AGENT_STATUS = "agent_status"
BUDGET_WARNING = "budget_warning"
EVENT_TYPES = frozenset({THREAD_MESSAGE_CREATED, STREAM_CHUNK, RUN_UPDATE, GUILD_STATUS, AGENT_STATUS, BUDGET_WARNING})


def user_topic(username: str) -> str:
    return f"user:{username}"


def thread_topic(thread_id: str) -> str:
    return f"thread:{thread_id}"


def agent_topic(guild_id: str, agent_id: str) -> str:
    return f"agent:{guild_id}:{agent_id}"


def guild_topic(guild_id: str) -> str:
    return f"guild:{guild_id}"


def org_topic(organization_id: str) -> str:
    return f"org:{organization_id}"


def is_user_proxy(agent_id: str) -> bool:
    """A user's proxy: its comings and goings are presence, not an agent's status."""
    return agent_id.startswith(USER_PROXY_ID_PREFIX)


_buses: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, MessagingInterface] = weakref.WeakKeyDictionary()


def live_bus() -> MessagingInterface:
    """The live bus of the running loop (one per loop: a bus's backend belongs to the loop it was made on)."""
    loop = asyncio.get_running_loop()
    bus = _buses.get(loop)
    if bus is None:
        bus = _buses[loop] = MessagingInterface(LIVE_NAMESPACE)
    return bus


async def publish(event: str, data: dict[str, Any], topics: list[str]) -> None:
    """Tell the followers of `topics` (each at most once) that `event` happened; never raises."""
    if not topics:
        return
    try:
        message = Message.create(sender=PUBLISHER, topics=list(dict.fromkeys(topics)), format=event, payload=data)
        await live_bus().publish(message, ephemeral=True)
    except Exception:  # a live view missing one event, not a failure of what made it
        _failures.note(event)


class _Failures:
    """Failed publishes, logged at most once a minute (with how many since): a backend that is down would
    otherwise log every token flush of every stream."""

    def __init__(self) -> None:
        self.since = 0
        self.logged_at = float("-inf")

    def note(self, event: str) -> None:
        self.since += 1
        now = time.monotonic()
        if now - self.logged_at >= 60:
            logger.warning("live event %s not published (%d failed since the last report)", event, self.since,
                           exc_info=True)
            self.since, self.logged_at = 0, now


_failures = _Failures()


# --- the events, each made in one place ----------------------------------------------------


async def run_update(*, run_id: str, guild_id: str, organization_id: str | None, agent_id: str, thread_id: str | None,
                     status: str, trigger: str, requester_user: str | None, at: str, error: str = "") -> None:
    """`organization_id` lets a socket drop a run its user may no longer see (the user topic is checked once, when
    followed, and a user's runs may be anywhere); a run whose organisation is not known goes to its user not at
    all."""
    data: dict[str, Any] = {"run_id": run_id, "guild_id": guild_id, "organization_id": organization_id,
                            "agent_id": agent_id, "thread_id": thread_id, "status": status, "trigger": trigger, "at": at}
    if error:
        data["error"] = error
    topics = [agent_topic(guild_id, agent_id), guild_topic(guild_id)]
    if thread_id:
        topics.insert(0, thread_topic(thread_id))
    if requester_user and organization_id:
        topics.append(user_topic(requester_user))
    await publish(RUN_UPDATE, data, topics)


async def stream_chunk(*, guild_id: str, agent_id: str, thread_id: str, run_id: str, chunk_type: str, content: str,
                       seq: int, message_id: str, about: dict[str, Any] | None = None) -> None:
    data = {"thread_id": thread_id, "guild_id": guild_id, "agent_id": agent_id, "run_id": run_id,
            "chunk_type": chunk_type, "content": content, "seq": seq, "message_id": message_id, **(about or {})}
    await publish(STREAM_CHUNK, data, [thread_topic(thread_id)])


async def thread_message_created(*, thread_id: str, guild_id: str, agent_id: str, message: dict[str, Any]) -> None:
    """A message too large for an event (a long tool result) goes out `truncated`, its content cut and its tool
    result left out: GET /api/threads/{id}/messages has it whole."""
    data = {"thread_id": thread_id, "guild_id": guild_id, "agent_id": agent_id, "message": message}
    if len(orjson.dumps(message)) > EVENT_MESSAGE_MAX_BYTES:
        data["message"] = {**message, "content": message.get("content", "")[:EVENT_MESSAGE_MAX_BYTES // 8],
                           "tool_result": None, "tool_calls": None, "truncated": True}
    await publish(THREAD_MESSAGE_CREATED, data, [thread_topic(thread_id)])


async def guild_status(*, guild_id: str, organization_id: str | None, status: str, detail: str,
                       agents: dict[str, int], at: str) -> None:
    """`agents`: how many of the guild's agents (users' proxies aside) are in each status: its health summary."""
    data = {"guild_id": guild_id, "organization_id": organization_id, "status": status, "detail": detail,
            "agents": agents, "at": at}
    topics = [guild_topic(guild_id)]
    if organization_id:
        topics.append(org_topic(organization_id))
    await publish(GUILD_STATUS, data, topics)


async def agent_status(*, guild_id: str, agent_id: str, name: str, kind: str, status: str, detail: str,
                       at: str) -> None:
    data = {"guild_id": guild_id, "agent_id": agent_id, "name": name, "kind": kind, "status": status,
            "detail": detail, "at": at}
    await publish(AGENT_STATUS, data, [agent_topic(guild_id, agent_id), guild_topic(guild_id)])


async def budget_warning(*, guild_id: str, warning: dict[str, Any]) -> None:
    """`warning` as guilds.budgets makes it, with its organisation's id: only that organisation's admins see it."""
    organization_id = warning.get("organization_id")
    if not organization_id:  # a guild outside any organisation: nobody but superusers could read its budget
        return
    await publish(BUDGET_WARNING, {"guild_id": guild_id, **warning}, [guild_topic(guild_id), org_topic(organization_id)])
