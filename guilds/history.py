"""A guild's stored messages, browsed by an operator: the topics it has, and one filtered page of one of them.

Reads stay bounded: a page is cut from the topic's newest SCAN_CAP messages (the bus reads "the newest N" or
"after an id", not "before an id"), so one request never loads more than that, whatever its filters. Messages
older than that window are out of this browser's reach.
"""

from __future__ import annotations

from dataclasses import dataclass

from guilds.engines import bus_of
from guilds.models import Guild
from guilds.runtime import loop as runtime_loop
from messaging import topics as topic_names
from messaging.message import Message, RoutingSlip

SCAN_CAP = 1000  # messages of a topic's history read per request, at most


@dataclass(frozen=True)
class MessagePage:
    messages: list[Message]  # newest first
    next_before_id: int | None  # where the next (older) page starts; None when the window has no more


def guild_topics(guild: Guild) -> list[str]:
    """The topics an operator may browse, sorted: the default and status topics, the agents' own topics,
    the routes' destinations and each member's inbox and notifications."""
    spec = guild.spec or {}
    found = {topic_names.DEFAULT_TOPIC, topic_names.GUILD_STATUS_TOPIC}
    for agent in spec.get("agents") or []:
        found.update(agent.get("additional_topics") or [])
    # The stored spec was validated at launch; the slip's model reads `topic` and `topics` alike.
    for step in RoutingSlip.model_validate(spec.get("routes") or {}).steps:
        if step.destination is not None:
            found.update(step.destination.topic_list)
    usernames = set(guild.members.values_list("user__username", flat=True))
    if guild.launched_by is not None:
        usernames.add(guild.launched_by.get_username())
    for username in usernames:
        found.update({topic_names.user_inbox(username), topic_names.user_notifications(username)})
    return sorted(found)


def _matches(message: Message, sender: str | None, message_format: str | None) -> bool:
    if sender is not None and sender not in (message.sender.id, message.sender.name):
        return False
    # A format matches in full or by its short name (`ChatCompletionResponse` for `x.y.ChatCompletionResponse`).
    return message_format is None or message_format in (message.format, message.format.rpartition(".")[2])


def guild_messages_browse(*, guild: Guild, topic: str, limit: int, sender: str | None = None,
                          message_format: str | None = None, before_id: int | None = None) -> MessagePage:
    """Up to `limit` messages of `topic` older than `before_id`, newest first, among the topic's newest
    SCAN_CAP; with a sender (id or name) and/or a format to match."""

    async def newest() -> list[Message]:  # on the runtime loop, where the bus lives
        return await bus_of(guild.id, guild.spec).get_messages(topic, limit=SCAN_CAP)

    # By id, not arrival: ids order by creation time, and before_id pages by id, so pages never overlap.
    window = sorted(runtime_loop.run(newest()), key=lambda message: message.id, reverse=True)
    matching = [message for message in window
                if (before_id is None or message.id < before_id) and _matches(message, sender, message_format)]
    page = matching[:limit]
    return MessagePage(messages=page, next_before_id=page[-1].id if len(matching) > limit else None)
