"""Redis-only behaviour: across processes, through a dropped connection, typed failures."""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

import pytest
import redis.asyncio as aioredis

from messaging.bus import MessagingInterface
from messaging.config import redis_config
from messaging.errors import BackendUnavailable, MessagingError

from .conftest import Collector, text_message, unique, wait_until

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
async def bus(redis_url, redis_prefix):
    interface = MessagingInterface(unique(), redis_config(redis_url, key_prefix=redis_prefix, reconnect_delay=0.2))
    yield interface
    await interface.shutdown()


@pytest.mark.services
async def test_message_from_another_process_reaches_this_subscriber(bus, redis_url, redis_prefix):
    c = Collector("here")
    await bus.subscribe("cross", c)
    env = {**os.environ, "REDIS_URL": redis_url, "DJANGO_SETTINGS_MODULE": "guildsite.settings"}
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "tests.messaging.publisher_process", redis_url, redis_prefix, bus.namespace, "cross", "3",
        cwd=ROOT, env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )
    _, stderr = await asyncio.wait_for(proc.communicate(), timeout=60)
    assert proc.returncode == 0, stderr.decode()[-2000:]
    received = await c.wait_for(3, timeout=10)
    assert [m.payload["i"] for m in received] == [0, 1, 2]
    assert {m.payload["pid"] for m in received} != {os.getpid()}
    assert all(m.sender.id == "other-process" and m.topic_published_to == "cross" for m in received)


async def _kill_subscriber_connection(redis_url: str, client_name: str) -> None:
    admin = aioredis.Redis.from_url(redis_url)
    try:
        clients = await admin.client_list(_type="pubsub")
        ids = [c["id"] for c in clients if c.get("name") == client_name]
        assert ids, f"no pub/sub connection named {client_name}"
        for client_id in ids:
            await admin.client_kill_filter(_id=client_id)
    finally:
        await admin.aclose()


@pytest.mark.services
async def test_subscriber_briefly_away_loses_nothing_and_gets_nothing_twice(bus, redis_url):
    c = Collector("listener")
    await bus.subscribe("t", c)
    backend = await bus.get_backend()
    before = [await bus.publish(text_message("s", "t", f"before {i}")) for i in range(2)]
    await c.wait_for(2)

    await _kill_subscriber_connection(redis_url, backend.subscriber_client_name)
    await wait_until(lambda: not backend.subscriber.connected, what="the subscriber to notice the lost connection")
    away = [await bus.publish(text_message("s", "t", f"away {i}")) for i in range(5)]  # pub/sub is down

    await wait_until(lambda: backend.subscriber.connected, what="the subscriber to reconnect")
    after = [await bus.publish(text_message("s", "t", f"after {i}")) for i in range(2)]
    await c.wait_for(9)
    await asyncio.sleep(0.05)  # room for a duplicate to show up, if there were one
    assert c.ids == [m.id for m in before + away + after]
    assert backend.reconnects >= 1
    assert backend.caught_up >= 5


@pytest.mark.services
async def test_a_key_of_the_wrong_type_stores_nothing(bus, redis_url):
    backend = await bus.get_backend()
    admin = aioredis.Redis.from_url(redis_url)
    try:
        await admin.set(backend.stream_key(f"{bus.namespace}:b"), "not a stream")
        message = text_message("s", ["a", "b"])
        with pytest.raises(MessagingError, match="WRONGTYPE"):
            await bus.publish(message)
        assert await bus.get_messages("a") == []
        assert await admin.exists(backend.message_key(bus.namespace, message.id)) == 0
    finally:
        await admin.aclose()


@pytest.mark.services
async def test_stream_and_message_keys_carry_ttl(redis_url, redis_prefix):
    bus = MessagingInterface(unique(), redis_config(redis_url, key_prefix=redis_prefix, message_ttl=600))
    admin = aioredis.Redis.from_url(redis_url)
    try:
        backend = await bus.get_backend()
        m = await bus.publish(text_message("s", "t"))
        stream_ttl = await admin.pttl(backend.stream_key(f"{bus.namespace}:t"))
        message_ttl = await admin.pttl(backend.message_key(bus.namespace, m.id))
        assert 590_000 < stream_ttl <= 600_000
        assert 590_000 < message_ttl <= 600_000
    finally:
        await admin.aclose()
        await bus.shutdown()


async def test_unreachable_redis_raises_backend_unavailable():
    bus = MessagingInterface(unique(), redis_config("redis://127.0.0.1:1/0", connect_timeout=0.5))
    try:
        with pytest.raises(BackendUnavailable, match=r"127\.0\.0\.1:1"):
            await bus.publish(text_message("s", "t"))
        with pytest.raises(BackendUnavailable, match=r"127\.0\.0\.1:1"):
            await bus.get_messages("t")
        with pytest.raises(BackendUnavailable, match=r"127\.0\.0\.1:1"):
            await bus.subscribe("t", Collector("c"))
        backend = await bus.get_backend()
        assert backend.subscribed_topics() == frozenset()
    finally:
        await bus.shutdown()


async def test_subscriber_connection_has_no_read_timeout():
    bus = MessagingInterface(unique(), redis_config("redis://127.0.0.1:1/0"))
    try:
        backend = await bus.get_backend()
        sub_kwargs = backend.subscriber.pubsub_client.connection_pool.connection_kwargs
        cmd_kwargs = backend.client.connection_pool.connection_kwargs
        assert sub_kwargs["socket_timeout"] is None  # redis-py 8's 5 s default would drop idle subscribers
        assert sub_kwargs["socket_connect_timeout"] <= 5
        assert cmd_kwargs["socket_timeout"] > 5
    finally:
        await bus.shutdown()


def test_seed_style_redis_client_config():
    from messaging.backends.redis import RedisMessagingBackend

    backend = RedisMessagingBackend(redis_client={"host": "redis.internal", "port": 6380, "ssl": False, "db": 2})
    assert (backend.host, backend.port, backend.db) == ("redis.internal", 6380, 2)
    assert backend.channel("g:t") == b"gs:c:2:g:t"


@pytest.mark.services
async def test_concurrent_publishes_share_round_trips_and_all_arrive(bus):
    c = Collector("c")
    await bus.subscribe("burst", c)
    messages = [text_message("s", "burst", str(i)) for i in range(200)]
    await asyncio.gather(*(bus.publish(m) for m in messages))
    await c.wait_for(200)
    assert sorted(c.ids) == sorted(m.id for m in messages)
    assert len(set(c.ids)) == 200
    history = await bus.get_messages("burst")
    assert [m.id for m in history] == c.ids  # delivery follows the stream's order


@pytest.mark.services
async def test_a_lost_script_cache_is_reloaded(bus):
    backend = await bus.get_backend()
    await bus.publish(text_message("s", "t"))
    await backend.client.script_flush()  # as if the server had restarted: NOSCRIPT for the next write
    m = await bus.publish(text_message("s", "t", "after"))
    assert (await bus.get_messages("t", limit=1))[0].id == m.id
