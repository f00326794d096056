"""The messages waiting for an external agent, and what it publishes into its guilds.

A guild's seat of the agent (guilds.agents.external) stores each message routed to it here, in the database
(durable on every engine), and wakes the agent's socket; the socket sends what waits, and a message is removed
when the agent acknowledges it (at-least-once). Per seat at most GUILDSITE_EXTERNAL_QUEUE_LIMIT wait: beyond
it the oldest go to the guild's dead letters.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, Any

from django.conf import settings
from django.db import DatabaseError, IntegrityError
from django.db.models import QuerySet

from guilds.external import signals
from guilds.external.registry import EXTERNAL_CLASS
from guilds.models import AgentKind, ExternalAgent, ExternalDelivery, Guild
from guilds.runtime import dead_letters
from guilds.runtime.context import HandlerContext
from guilds.runtime.store import on_db_threads
from messaging import topics as topic_names
from messaging.ids import new_id
from messaging.message import AgentTag, Message

if TYPE_CHECKING:
    from guilds.runtime.host import AgentHost

logger = logging.getLogger(__name__)


PUSHED_MAX_CHARS = 64 * 1024  # larger messages are read from the queue by the socket
STORE_RETRY_PAUSES = (0.2, 1.0, 3.0)


class AgentGone(Exception):
    """The registration the seat names no longer exists."""


@on_db_threads
def _store(agent_id: str, guild_id: str, seat_id: str, message: Message, at_most: int | None
           ) -> tuple[ExternalDelivery | None, list[ExternalDelivery], int | None]:
    """Store one message for the agent (once, however often the engine hands it over): (the new delivery, or None
    if it was stored before; the deliveries pushed out by the bound; how many wait now, if counted). `at_most`: what
    the seat knows waits at most (acknowledgements only lower it); the queue is counted only when that nears the
    bound, so a message costs one insert."""
    try:
        delivery = ExternalDelivery.objects.create(agent_id=agent_id, guild_id=guild_id, seat_id=seat_id,
                                                   message_id=message.id, message=message.to_json().decode())
    except IntegrityError:
        if not ExternalAgent.objects.filter(pk=agent_id).exists():
            raise AgentGone(f"external agent '{agent_id}' was deleted") from None
        return None, [], at_most  # stored already (an engine's redelivery)
    limit = settings.GUILDSITE_EXTERNAL_QUEUE_LIMIT
    if at_most is not None and at_most + 1 <= limit:
        return delivery, [], None
    waiting = ExternalDelivery.objects.filter(agent_id=agent_id, guild_id=guild_id, seat_id=seat_id)
    count = waiting.count()
    if count <= limit:
        return delivery, [], count
    # One seat's messages are stored one at a time (its engine runs one handler at a time): no race here.
    oldest = list(waiting.order_by("id")[:count - limit])
    ExternalDelivery.objects.filter(pk__in=[d.pk for d in oldest]).delete()
    return delivery, oldest, limit


async def _store_retrying(agent_id: str, guild_id: str, seat_id: str, message: Message, at_most: int | None
                          ) -> tuple[ExternalDelivery | None, list[ExternalDelivery], int | None]:
    """_store, tried again over a few seconds when the database errs (busy, a failover): the seat's engine does not
    hand a failed message over again."""
    for pause in STORE_RETRY_PAUSES:
        try:
            return await _store(agent_id, guild_id, seat_id, message, at_most)
        except DatabaseError:
            logger.warning("storing a message for external agent %s failed; trying again in %.1f s", agent_id, pause,
                           exc_info=True, extra={"guild_id": guild_id, "message_id": message.id})
            await asyncio.sleep(pause)
    return await _store(agent_id, guild_id, seat_id, message, at_most)


async def message_enqueue(host: AgentHost, agent_id: str, message: Message, at_most: int | None) -> int | None:
    """A message for the agent, from its seat `host`: stored, its socket woken. Returns how many wait at most now
    (None: not known), for the seat's next call."""
    try:
        delivery, pushed_out, counted = await _store_retrying(agent_id, host.guild.guild_id, host.agent_id, message,
                                                              at_most)
    except AgentGone as exc:
        await dead_letters.dead_letter(host.guild, agent_id=host.agent_id, message_id=message.id,
                                       body=dead_letters.body_of(message), reason=str(exc), attempts=1)
        return None
    if counted is not None:
        at_most = counted
    elif at_most is not None and delivery is not None:
        at_most += 1
    for delivery in pushed_out:
        await dead_letters.dead_letter(
            host.guild, agent_id=host.agent_id, message_id=delivery.message_id,
            body=dead_letters.body_of(delivery.message.encode()), attempts=0,
            reason=f"external agent {agent_id} had {settings.GUILDSITE_EXTERNAL_QUEUE_LIMIT} messages waiting "
                   f"(GUILDSITE_EXTERNAL_QUEUE_LIMIT): the oldest was dropped")
    if delivery is None:
        return at_most
    if len(delivery.message) <= PUSHED_MAX_CHARS and not pushed_out:
        # The wake-up carries the message: a connected agent gets it without a read of the queue.
        await signals.work_waits(agent_id, deliveries=[{
            "id": delivery.pk, "guild_id": delivery.guild_id, "seat_id": delivery.seat_id,
            "message_id": delivery.message_id, "message": delivery.message}])
    else:
        await signals.work_waits(agent_id)
    return at_most


def waiting_query(agent_id: str) -> QuerySet[ExternalDelivery]:
    """What waits for the agent, oldest first."""
    return ExternalDelivery.objects.filter(agent_id=agent_id).order_by("id")


def deliveries_ack(agent_id: str, delivery_ids: set[int]) -> bool:
    """Done with them: removed. False if none was waiting (acknowledged before, or another agent's)."""
    if not delivery_ids:
        return False
    deleted, _ = ExternalDelivery.objects.filter(agent_id=agent_id, pk__in=list(delivery_ids)).delete()
    return bool(deleted)


def waiting_origin(agent_id: str, guild_id: str, message_id: int) -> tuple[str, Message] | None:
    """(seat id, message) of a message still waiting for the agent in that guild."""
    delivery = ExternalDelivery.objects.filter(agent_id=agent_id, guild_id=guild_id, message_id=message_id).first()
    return None if delivery is None else (delivery.seat_id, Message.from_json(delivery.message))


def seat_of(agent_id: str, guild: Guild) -> dict[str, Any] | None:
    """The guild's first spec agent seating `agent_id`."""
    from guilds.external.registry import seats_in

    for _, agent in seats_in(guild.spec):
        if str((agent.get("properties") or {}).get("registration_id", "")) == agent_id:
            return agent
    return None


class _SeatSender:
    """Enough of an AgentHost for a HandlerContext to publish as the seat: the same routing, reply fields and
    ids as an agent running in the guild."""

    kind = AgentKind.BOT
    class_name = EXTERNAL_CLASS
    collect_woken = None

    def __init__(self, bus: Any, seat: dict[str, Any]) -> None:
        self.bus = bus
        self.agent_id = str(seat["id"])
        self.tag = AgentTag(id=self.agent_id, name=str(seat.get("name") or self.agent_id))

    def default_slip(self) -> None:
        return None

    async def publish(self, message: Message) -> Message:
        return await self.bus.publish(message)


class _SeatContext(HandlerContext):
    def _next_id(self, priority: int) -> int:
        # Not derived from the request: two answers the agent sends to one message are two messages.
        return new_id(priority)


async def publish_as_seat(bus: Any, seat: dict[str, Any], *, format_name: str, payload: dict[str, Any],
                          origin: Message | None, conversation_id: int | None) -> list[Message]:
    """What the agent publishes, as its seat: a reply to `origin` as any agent's reply (its routes, else back to
    the sender), or, without one, on the guild's default topic. Run on the runtime loop."""
    ctx = _SeatContext(_SeatSender(bus, seat), origin, "external")
    topics = None if origin is not None else [topic_names.DEFAULT_TOPIC]
    return await ctx.send(payload, format=format_name, topics=topics, conversation_id=conversation_id)
