"""Requests to a guild's manager from outside the guild (sockets, REST, the admin): one path for all."""

from __future__ import annotations

import asyncio
from typing import Any

from guilds.runtime import formats
from messaging import topics as topic_names
from messaging.bus import MessagingInterface
from messaging.clients import SimpleClient
from messaging.message import AgentTag, Message


def user_socket_tag(user_id: str, user_name: str | None = None) -> AgentTag:
    return AgentTag(id=f"user_socket:{user_id}", name=user_name or user_id)


async def system_request(
    bus: MessagingInterface,
    *,
    format_name: str,
    payload: dict[str, Any],
    user_id: str,
    await_status: str | None = None,
    timeout: float = 10.0,
) -> Message:
    """Publish a request on the guild's system topic; with `await_status`, wait until the
    manager announces that status (raises TimeoutError if it does not within `timeout`)."""
    message = Message.create(sender=user_socket_tag(user_id), topics=topic_names.SYSTEM_TOPIC,
                             payload=payload, format=format_name)
    if await_status is None:
        return await bus.publish(message)
    reached = asyncio.Event()

    def watch(update: Message) -> None:
        if update.format == formats.GUILD_STATUS and update.payload.get("status") == await_status:
            reached.set()

    watcher = SimpleClient(id=f"request-watch:{message.id}", name="request watcher", handler=watch)
    await bus.register_client(watcher)
    await bus.subscribe(topic_names.GUILD_EVENTS_TOPIC, watcher)
    try:
        await bus.publish(message)
        async with asyncio.timeout(timeout):
            await reached.wait()
    finally:
        await bus.unregister_client(watcher)
    return message
