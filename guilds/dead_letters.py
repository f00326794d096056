"""Dead letters from outside the runtime: listing, redelivering and deleting them (the REST API and
the admin call these; the runtime files them, guilds.runtime.dead_letters)."""

from __future__ import annotations

import asyncio
import logging

from django.db.models import QuerySet

from guilds.engines import engine_for_spec
from guilds.engines.base import ExecutionEngine
from guilds.models import DeadLetter, Guild
from guilds.runtime import loop as runtime_loop
from guilds.services import guild_wake
from messaging.errors import InvalidMessage
from messaging.message import Message

logger = logging.getLogger(__name__)


class NotRedeliverable(Exception):
    """The message cannot be given back (it cannot be decoded, or its agent does not run); says why."""


def dead_letter_list(*, guild: Guild) -> QuerySet[DeadLetter]:
    return DeadLetter.objects.filter(guild=guild).order_by("-failed_at", "-pk")


def dead_letter_redeliver(*, letter: DeadLetter) -> None:
    """Put the message back in its agent's inbox (its attempts start over) and drop the letter."""
    try:
        message = Message.model_validate(letter.message)
    except (InvalidMessage, ValueError) as exc:
        raise NotRedeliverable(f"message {letter.message_id} cannot be decoded, so it cannot be redelivered: {exc}") from None
    engine = engine_for_spec(letter.guild.spec)
    resumed = guild_wake(guild_id=letter.guild_id)  # a message for its agents: a suspended guild comes back for it
    if not runtime_loop.run(_redeliver(engine, letter, message, wait=10.0 if resumed else 0.0)):
        raise NotRedeliverable(f"agent {letter.agent_id} does not run: relaunch the guild first")
    letter.delete()
    logger.info("dead letter redelivered", extra={"guild_id": letter.guild_id, "agent_id": letter.agent_id,
                                                  "message_id": letter.message_id})


async def _redeliver(engine: ExecutionEngine, letter: DeadLetter, message: Message, *, wait: float) -> bool:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + wait
    while not await engine.redeliver(letter.guild_id, letter.agent_id, message):
        if loop.time() >= deadline:
            return False
        await asyncio.sleep(0.05)  # a guild just resumed: its agents are starting
    return True


def dead_letter_delete(*, letter: DeadLetter) -> None:
    letter.delete()
