"""A stand-in for a local client (in-process: the memory backend hands messages out as it stores them): the bus
publishes the client's copy for it while it has nothing waiting or under way, and the client's order holds."""

from __future__ import annotations

import asyncio

import pytest

from messaging.bus import MessagingInterface
from messaging.clients import MessageTrackingClient
from messaging.config import memory_config
from messaging.errors import PayloadTooLarge
from messaging.message import Message

from .conftest import Collector, text_message, unique, wait_until


def passing_work_on(message: Message) -> list[tuple[str, str, str, Message]]:
    """agent-1's whole handling of what comes on "work": passing it on to "passed-on"."""
    if "work" not in message.topic_list:
        return []
    return [("work", "agent-1", "passed-on", message.model_copy(update={"topics": ["passed-on"]}))]


class PassingOn:
    """agent-1 as it would be: it passes on what it gets, once `go` is set."""

    def __init__(self, bus: MessagingInterface) -> None:
        self.bus = bus
        self.handled: list[str] = []
        self.go = asyncio.Event()
        self.go.set()
        self.client = MessageTrackingClient("agent-1", "Agent 1", self.handle)

    async def handle(self, message: Message) -> None:
        await self.go.wait()
        self.handled.append(message.payload["text"])
        await self.bus.publish(message.model_copy(update={"topics": ["passed-on"]}))


@pytest.fixture
async def rig():
    bus = MessagingInterface(unique(), memory_config(), stand_in=passing_work_on)
    agent = PassingOn(bus)
    await bus.subscribe("work", agent.client)
    await bus.subscribe("other", agent.client)
    user = Collector("user")
    await bus.subscribe("passed-on", user)
    yield bus, agent, user
    await agent.client.close()
    await bus.shutdown()


def texts(messages: list[Message]) -> list[str]:
    return [m.payload["text"] for m in messages]


async def test_an_idle_client_has_its_copy_published_for_it_and_does_not_get_the_message(rig):
    bus, agent, user = rig
    sent = await bus.publish(text_message("someone", "work", "one"))
    [copy] = user.received  # published with the message itself, not on the client's turn
    assert (copy.id, copy.topic_published_to, copy.sender.id) == (sent.id, "passed-on", "someone")
    assert not agent.client.busy
    assert agent.handled == []
    assert texts(await bus.get_messages("passed-on")) == ["one"]


async def test_a_busy_client_gets_the_message_itself_after_what_it_has(rig):
    bus, agent, user = rig
    agent.go.clear()  # it is at work on the first message
    await bus.publish(text_message("someone", "other", "first"))
    await wait_until(lambda: agent.client.busy, what="agent-1 at work")
    await bus.publish(text_message("someone", "work", "second"))
    assert user.received == []
    agent.go.set()
    await user.wait_for(2)
    assert texts(user.received) == ["first", "second"]
    assert agent.handled == ["first", "second"]


async def test_a_copy_too_large_to_store_leaves_the_message_to_the_client(rig):
    bus, agent, user = rig
    message = text_message("someone", "work", "x" * 200)
    bus.max_message_bytes = len(message.model_copy(update={"topic_published_to": "work"}).to_json()) + 1
    await bus.publish(message)
    await wait_until(lambda: agent.handled == ["x" * 200], what="agent-1 handling it")
    assert user.received == []  # its own copy was too large too


async def test_a_message_refused_by_the_store_is_not_taken_as_handed_to_the_client(rig):
    bus, agent, user = rig
    message = text_message("someone", ["work", "a-topic-with-a-long-name-" + "n" * 100], "too large at first")
    copy = message.model_copy(update={"topics": ["passed-on"], "topic_published_to": "passed-on"})
    bus.max_message_bytes = len(copy.to_json()) + 10  # room for its copy, not for the message
    with pytest.raises(PayloadTooLarge):
        await bus.publish(message)
    assert user.received == []
    bus.max_message_bytes = 1_000_000
    await bus.publish(message)  # sent again: the copy goes out for the client now
    assert texts(user.received) == ["too large at first"]
    assert agent.handled == []
