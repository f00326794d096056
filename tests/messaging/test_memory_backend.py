"""In-memory backend specifics: one store per process, delivery into the subscriber's loop."""

from __future__ import annotations

import asyncio
import threading

from messaging.backends.memory import InMemoryMessagingBackend
from messaging.bus import MessagingInterface
from messaging.config import memory_config

from .conftest import Collector, text_message, unique


async def test_memory_buses_in_one_process_share_the_store():
    namespace = unique()
    one = MessagingInterface(namespace, memory_config())
    two = MessagingInterface(namespace, memory_config(max_history=50))  # another backend instance
    try:
        assert await one.get_backend() is not await two.get_backend()
        listener = Collector("listener")
        await two.subscribe("t", listener)
        sent = await one.publish(text_message("s", "t"))
        assert [m.id for m in await two.get_messages("t")] == [sent.id]
        assert listener.ids == [sent.id]  # fan-out is synchronous in the publisher's loop
    finally:
        await one.shutdown()
        await two.shutdown()


def _loop_in_thread() -> tuple[asyncio.AbstractEventLoop, threading.Thread]:
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    return loop, thread


async def test_handler_runs_in_the_loop_that_subscribed():
    other_loop, thread = _loop_in_thread()
    backend = InMemoryMessagingBackend()
    topic = f"{unique()}:t"
    seen = threading.Event()
    where: list[int] = []

    def handler(message):
        where.append(threading.get_ident())
        seen.set()

    try:
        asyncio.run_coroutine_threadsafe(backend.subscribe(topic, handler), other_loop).result(5)
        await backend.store_message(topic.split(":")[0], [topic], text_message("s", "t"))
        assert await asyncio.to_thread(seen.wait, 5)
        assert where == [thread.ident]
    finally:
        asyncio.run_coroutine_threadsafe(backend.cleanup(), other_loop).result(5)
        other_loop.call_soon_threadsafe(other_loop.stop)
        thread.join(5)
        other_loop.close()


async def test_subscription_of_a_closed_loop_is_dropped(caplog):
    other_loop, thread = _loop_in_thread()
    stale = InMemoryMessagingBackend()
    namespace = unique()
    topic = f"{namespace}:t"
    asyncio.run_coroutine_threadsafe(stale.subscribe(topic, lambda m: None), other_loop).result(5)
    other_loop.call_soon_threadsafe(other_loop.stop)
    thread.join(5)
    other_loop.close()  # its bus was never shut down

    live = InMemoryMessagingBackend()
    got = []
    await live.subscribe(topic, got.append)
    try:
        await live.store_message(namespace, [topic], text_message("s", "t"))
        await live.store_message(namespace, [topic], text_message("s", "t"))
        assert len(got) == 2
        assert caplog.text.count("event loop is closed") == 1
    finally:
        await live.cleanup()
