"""The guild's dead-letter queue: messages an agent could not be given, whatever the engine.

A letter is a row (guilds.models.DeadLetter: what the API and the admin list, redeliver and delete)
and a notice on the guild's `dead_letter_queue` topic, `{"message", "agent_id", "reason",
"attempts", "failed_at"}`, as the original system names it.
"""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from guilds.runtime import formats, store
from messaging import topics as topic_names
from messaging.errors import PayloadTooLarge
from messaging.message import AgentTag, Message

if TYPE_CHECKING:
    from guilds.runtime.guild import GuildControl

logger = logging.getLogger(__name__)

DELIVERY_TAG = AgentTag(id="guildsite.delivery", name="delivery")


def body_of(message: Message | bytes | None) -> dict[str, Any]:
    """The message as a letter keeps it: its JSON object, or its raw text when it cannot be decoded."""
    if isinstance(message, Message):
        return json.loads(message.to_json())
    raw = (message or b"").decode(errors="replace")
    try:
        decoded = json.loads(raw)
    except ValueError:
        decoded = None
    return decoded if isinstance(decoded, dict) else {"undecodable": raw[:100_000]}


async def dead_letter(guild: GuildControl, *, agent_id: str, message_id: int, body: dict[str, Any], reason: str,
                      attempts: int) -> None:
    await store.dead_letter_save(guild.guild_id, agent_id=agent_id, message_id=message_id, message=body,
                                 reason=reason, attempts=attempts)
    logger.warning("message %s for agent %s dead-lettered after %d attempt(s): %s", message_id, agent_id, attempts,
                   reason, extra={"guild_id": guild.guild_id, "agent_id": agent_id, "message_id": message_id})
    notice = {"message": body, "agent_id": agent_id, "reason": reason, "attempts": attempts,
              "failed_at": datetime.now(UTC).isoformat()}
    try:
        await guild.bus.publish(_notice(notice))
    except PayloadTooLarge:  # the letter row has it whole; the notice names it
        await guild.bus.publish(_notice({**notice, "message": {"id": str(message_id)}}))


def _notice(payload: dict[str, Any]) -> Message:
    return Message.create(sender=DELIVERY_TAG, topics=topic_names.DEAD_LETTER_TOPIC, format=formats.DEAD_LETTER,
                          payload=payload)
