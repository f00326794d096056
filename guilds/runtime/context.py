"""What a handler gets: the message, ways to send, and the agent's and guild's state."""

from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING, Any

from guilds.runtime import routing
from guilds.runtime.formats import ERROR_MESSAGE
from messaging import topics as topic_names
from messaging.ids import Priority, derive_id, new_id
from messaging.message import AgentTag, ForwardHeader, Message, ProcessEntry

if TYPE_CHECKING:
    from guilds.runtime.host import AgentHost


class HandlerContext:
    """Handed to every handler call. `send`, `reply`, `forward` and `send_error` publish through the
    guild's bus; outgoing ids are derived from the handled message and the agent, so a handler
    re-run after a crash produces the same ids and de-duplication removes the repeats."""

    def __init__(self, host: AgentHost, message: Message | None, method_name: str | None) -> None:
        self.host = host
        self.message = message
        self.method_name = method_name
        self._sent = 0

    @property
    def agent(self):
        return self.host.agent

    @property
    def payload(self) -> dict[str, Any]:
        return self.message.payload if self.message else {}

    # --- sending -------------------------------------------------------------------------
    def _next_id(self, priority: int) -> int:
        self._sent += 1
        if self.message is None:
            return new_id(priority)
        # The handler's name too: two handlers of one agent answering one message get distinct ids.
        return derive_id(self.message.id, f"{self.host.agent_id}/{self.method_name}", self._sent, priority)

    async def send(
        self,
        payload: dict[str, Any],
        *,
        format: str,
        topics: str | list[str] | None = None,
        recipients: list[AgentTag] | None = None,
        priority: int | None = None,
        forwarding: bool = False,
        routed: bool = True,
        conversation_id: int | None = None,
    ) -> list[Message]:
        """Publish `payload`. Routes in the handled message's slip decide where (see guilds.runtime.routing);
        with none, `topics` if given, else back to whoever sent the handled message. `conversation_id` applies
        outside a handled message (a reply keeps its request's)."""
        origin = self.message
        explicit = [topics] if isinstance(topics, str) else list(topics) if topics else None
        destinations = routing.route(
            sender=routing.Sender(tag=self.host.tag, class_name=self.host.class_name, method_name=self.method_name),
            origin=origin,
            slip=(origin.routing_slip if origin is not None else self.host.default_slip()) if routed else None,
            message_format=format,
            explicit_topics=explicit,
            default_topics=routing.back_to_requester(origin),
        )
        sent: list[Message] = []
        for dest in destinations:
            prio = priority if priority is not None else dest.priority if dest.priority is not None else (
                origin.priority if origin is not None else Priority.NORMAL
            )
            message_id = self._next_id(prio)
            fields: dict[str, Any] = {
                "recipient_list": list(recipients or []) + dest.recipient_list,
                "routing_slip": dest.routing_slip,
            }
            if conversation_id is not None:  # a message starting a conversation of its own
                fields["conversation_id"] = conversation_id
            if origin is not None:
                fields.update(
                    in_response_to=origin.id,
                    thread=[*origin.thread, message_id],
                    conversation_id=origin.conversation_id,
                    session_state=origin.session_state,
                    message_history=[
                        *origin.message_history,
                        ProcessEntry(
                            agent=self.host.tag,
                            origin=origin.id,
                            result=message_id,
                            processor=self.method_name or "",
                            from_topic=origin.topic_published_to,
                            to_topics=dest.topics,
                        ),
                    ],
                )
                if forwarding or dest.forwarded:
                    fields["forward_header"] = origin.forward_header or ForwardHeader(
                        origin_message_id=origin.id, on_behalf_of=origin.sender
                    )
            message = Message.create(
                id=message_id, sender=self.host.tag, topics=dest.topics, payload=payload, format=format,
                priority=prio, timestamp=int(time.time() * 1000), **fields,  # a derived id's time is its request's
            )
            sent.append(await self.host.publish(message))
        return sent

    async def reply(self, payload: dict[str, Any], *, format: str | None = None) -> list[Message]:
        """Answer the handled message: routes apply, else it goes back to the sender."""
        return await self.send(payload, format=format or (self.message.format if self.message else "generic_json"))

    async def forward(self, *, topics: str | list[str] | None = None) -> list[Message]:
        """Pass the handled message on, on behalf of its sender."""
        if self.message is None:
            raise RuntimeError("nothing to forward outside a message handler")
        return await self.send(
            dict(self.message.payload), format=self.message.format, topics=topics, forwarding=True
        )

    async def send_error(self, error_type: str, error_message: str) -> list[Message]:
        """An ErrorMessage to the sender of the handled message and to the guild's error topic."""
        payload = {"agent_type": self.host.class_name, "error_type": error_type, "error_message": error_message}
        targets = [*routing.back_to_requester(self.message), topic_names.ERROR_TOPIC]
        messages = await self.send(payload, format=ERROR_MESSAGE, topics=targets, routed=False)
        return messages

    # --- state ---------------------------------------------------------------------------
    @property
    def agent_state(self) -> dict[str, Any]:
        return self.host.state

    async def update_agent_state(self, patch: dict[str, Any]) -> dict[str, Any]:
        """Merge `patch` into the agent's state (JSON merge patch) and persist it."""
        return await self.host.state_update(patch)

    async def guild_state(self) -> dict[str, Any]:
        return await self.host.guild_state_get()

    async def update_guild_state(self, patch: dict[str, Any]) -> dict[str, Any]:
        return await self.host.guild_state_update(patch)


class SyncHandlerContext:
    """The same operations for a plain-function handler running in a worker thread."""

    def __init__(self, ctx: HandlerContext, loop: asyncio.AbstractEventLoop) -> None:
        self._ctx = ctx
        self._loop = loop
        self.message = ctx.message
        self.payload = ctx.payload
        self.agent = ctx.agent

    def _call(self, coro):
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result()

    def send(self, payload: dict[str, Any], **kwargs: Any) -> list[Message]:
        return self._call(self._ctx.send(payload, **kwargs))

    def reply(self, payload: dict[str, Any], **kwargs: Any) -> list[Message]:
        return self._call(self._ctx.reply(payload, **kwargs))

    def forward(self, **kwargs: Any) -> list[Message]:
        return self._call(self._ctx.forward(**kwargs))

    def send_error(self, error_type: str, error_message: str) -> list[Message]:
        return self._call(self._ctx.send_error(error_type, error_message))

    @property
    def agent_state(self) -> dict[str, Any]:
        return self._ctx.agent_state

    def update_agent_state(self, patch: dict[str, Any]) -> dict[str, Any]:
        return self._call(self._ctx.update_agent_state(patch))

    def guild_state(self) -> dict[str, Any]:
        return self._call(self._ctx.guild_state())

    def update_guild_state(self, patch: dict[str, Any]) -> dict[str, Any]:
        return self._call(self._ctx.update_guild_state(patch))


