"""UserProxyAgent: a user's presence in the guild (seed 000 §4.3).

What the user sends lands on `user:{user_id}:inbox`; the proxy confirms it to the user
(on `user:{user_id}:notifications`) and carries it into the guild by the guild's routes,
or, with none, to every agent (see guilds.runtime.routing). What is addressed to the user
(replies to the proxy's inbox, the user broadcast topic) goes to the notifications topic,
from where the user's sockets deliver it. The user's message keeps its id end to end, so
replies name it in `in_response_to` and `thread`.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from pydantic import BaseModel, ConfigDict

from guilds.runtime import formats, routing
from guilds.runtime.agent import ANY_FORMAT, Agent, handles
from guilds.runtime.context import HandlerContext
from guilds.spec import USER_PROXY_ID_PREFIX
from messaging import topics as topic_names
from messaging.ids import derive_id
from messaging.message import AgentTag, Message

PROXY_INBOX_PREFIX = topic_names.agent_inbox(USER_PROXY_ID_PREFIX)

if TYPE_CHECKING:
    from guilds.runtime.host import AgentHost
    from guilds.spec import GuildSpec

logger = logging.getLogger(__name__)


class UserProxyAgent(Agent):
    """Represents one user in a guild: forwards what they send, delivers what is meant for them."""

    kind = "human"
    answers_health_checks = False

    class Properties(BaseModel):
        model_config = ConfigDict(extra="forbid")
        user_id: str
        user_name: str = ""

    @property
    def user_id(self) -> str:
        return self.properties.user_id

    def extra_topics(self) -> list[str]:
        return [topic_names.user_inbox(self.user_id), topic_names.USER_MESSAGE_BROADCAST]

    def catch_up_topics(self) -> list[str]:
        return [topic_names.user_inbox(self.user_id)]

    @handles(ANY_FORMAT)
    async def unwrap_and_forward_message(self, ctx: HandlerContext) -> None:
        # The method name is the one the original system's routes name for this step.
        if ctx.message.topic_published_to == topic_names.user_inbox(self.user_id):
            await self._from_user(ctx)
        else:
            await self._to_user(ctx)

    async def _from_user(self, ctx: HandlerContext) -> None:
        host = self.host
        for outgoing in forwarded_copies(ctx.message, proxy=host.tag, proxy_class_name=host.class_name,
                                         spec=host.guild.spec, user_id=self.user_id):
            await host.publish(outgoing)

    async def _to_user(self, ctx: HandlerContext) -> None:
        message = ctx.message
        if message.sender.id == self.id:
            return
        await self.host.publish(for_user(message, self.user_id))


def for_user(message: Message, user_id: str) -> Message:
    """What a proxy passes on to its user for a message addressed to it: the message itself, on the user's
    notifications."""
    return message.model_copy(update={"topics": [topic_names.user_notifications(user_id)]})


def passed_on_by_proxies(message: Message) -> list[tuple[str, str, str, Message]]:
    """The bus's stand-in for users' proxies (messaging.delivery.StandIn): for each proxy's inbox among the
    message's topics, the copy the proxy would pass on to its user, its whole handling of it. Not when another
    of the message's topics reaches the same proxy (it handles a message once, as the first topic gave it) or
    is the user's notifications (the message's own copy goes there), nor for a health check (a proxy answers
    none), a message to be enriched with its history (the proxy's copy may carry it), or the proxy's own."""
    if (formats.canonical_format(message.format) == formats.HEALTH_CHECK_REQUEST
            or message.enrich_with_history > 0):
        return []
    topics = message.topic_list
    passed_on = []
    for topic in topics:
        if not topic.startswith(PROXY_INBOX_PREFIX):
            continue
        proxy_id = topic.removeprefix(topic_names.AGENT_INBOX_PREFIX)
        user_id = proxy_id.removeprefix(USER_PROXY_ID_PREFIX)
        notifications = topic_names.user_notifications(user_id)
        also_reaching = {topic_names.agent_self_inbox(proxy_id), topic_names.user_inbox(user_id),
                         topic_names.USER_MESSAGE_BROADCAST, notifications}
        if proxy_id == message.sender.id or not also_reaching.isdisjoint(topics):
            continue
        passed_on.append((topic, proxy_id, notifications, for_user(message, user_id)))
    return passed_on


def forwarded_copies(message: Message, *, proxy: AgentTag, proxy_class_name: str, spec: GuildSpec,
                     user_id: str) -> list[Message]:
    """What a user's proxy publishes for a message the user sent, in the order to publish them: a copy per
    destination of the guild's routes (or, with none, one to every agent), sent by the proxy. The first
    destination's copy keeps the user's id and goes to the user's notifications too (the user sees their
    message, with its id, as the guild got it); a fan-out rule's extra copies get ids derived from it and go
    first, so that once the user has seen the message, every copy of it is stored (the socket counts on it:
    guilds.consumers)."""
    destinations = routing.route(
        sender=routing.Sender(tag=proxy, class_name=proxy_class_name, method_name="unwrap_and_forward_message"),
        origin=message,
        slip=spec.routes,
        message_format=message.format,
        explicit_topics=None,
        default_topics=routing.user_message_fanout(spec.agents),
    )
    notifications = topic_names.user_notifications(user_id)
    copies = []
    for index, dest in enumerate(destinations):
        first = index == 0
        copies.append(message.model_copy(
            update={
                "id": message.id if first else derive_id(message.id, proxy.id, index, message.priority),
                "sender": proxy,
                "topics": [*dest.topics, notifications] if first else list(dest.topics),
                "routing_slip": dest.routing_slip,
                "recipient_list": [*message.recipient_list, *dest.recipient_list],
            }
        ))
    copies.reverse()
    return copies


async def forward_for_proxy(proxy: AgentHost, user_id: str, message: Message, *, one_store_only: bool = False) -> bool:
    """The proxy's work for a message its user sent, done by the caller (the user's socket, in the process where
    the proxy is loaded and has nothing of its own to do): its copies published on the guild's bus as the proxy
    would. False if routing it failed: then it goes to the proxy, which answers the user as for any failure.
    With `one_store_only`, also False when it makes several copies: stored one by one, from outside the proxy,
    they would leave the proxy looking idle to the stand-in (passed_on_by_proxies) between them, and a fast
    reply to an early copy could reach the user before their own message."""
    arrived = message.model_copy(update={"topic_published_to": topic_names.user_inbox(user_id)})
    try:
        copies = forwarded_copies(arrived, proxy=proxy.tag, proxy_class_name=proxy.class_name,
                                  spec=proxy.guild.spec, user_id=user_id)
    except Exception:
        logger.exception("routing a user's message failed; it goes to their proxy", extra={"guild_id": proxy.guild.guild_id})
        return False
    if one_store_only and len(copies) > 1:
        return False
    for outgoing in copies:
        await proxy.guild.bus.publish(outgoing)
    return True
