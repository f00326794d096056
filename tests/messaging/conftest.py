"""Fixtures for the messaging tests: one backend contract, run on both backends.

`backend_name` is parametrized over "memory" and "redis"; the Redis case is marked
`services` (it runs in the services pass of `make test`, with REDIS_URL set) and fails,
rather than skips, when REDIS_URL is missing there. Each Redis test gets its own key
prefix and deletes its keys afterwards.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import pytest
from django.conf import settings

from messaging.bus import MessagingInterface
from messaging.clients import SimpleClient
from messaging.config import MessagingConfig, memory_config, redis_config
from messaging.message import Message
from tests.support.redis_keys import delete_keys


def require_redis_url() -> str:
    url = getattr(settings, "REDIS_URL", None)
    if not url:
        pytest.fail("REDIS_URL is not set: this services test needs Redis (make test's services pass sets it)")
    return url


def unique(prefix: str = "g") -> str:
    return f"{prefix}{uuid.uuid4().hex[:12]}"




@pytest.fixture
def redis_url() -> str:
    return require_redis_url()


@pytest.fixture
def redis_prefix(redis_url: str) -> Iterator[str]:
    prefix = f"gs-test-{uuid.uuid4().hex[:10]}:"
    yield prefix
    delete_keys(redis_url, prefix)


@pytest.fixture(params=["memory", pytest.param("redis", marks=pytest.mark.services)])
def backend_name(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture
def make_config(backend_name: str, request: pytest.FixtureRequest) -> Callable[..., MessagingConfig]:
    """Factory of configs for the parametrized backend (extra backend_config as keywords)."""
    if backend_name == "memory":
        return lambda **options: memory_config(**options)
    prefix = request.getfixturevalue("redis_prefix")
    url = request.getfixturevalue("redis_url")
    return lambda **options: redis_config(url, key_prefix=prefix, **options)


@pytest.fixture
async def make_bus(make_config: Callable[..., MessagingConfig]) -> AsyncIterator[Callable[..., MessagingInterface]]:
    buses: list[MessagingInterface] = []

    def factory(namespace: str | None = None, **backend_config: Any) -> MessagingInterface:
        bus = MessagingInterface(namespace or unique(), make_config(**backend_config))
        buses.append(bus)
        return bus

    yield factory
    for bus in buses:
        await bus.shutdown()


async def wait_until(predicate: Callable[[], bool], timeout: float = 5.0, what: str = "condition") -> None:
    """Poll `predicate` until true (fails the test after `timeout` seconds)."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout}s waiting for {what}")
        await asyncio.sleep(0.002)


class Collector(SimpleClient):
    """A SimpleClient that keeps what it receives."""

    def __init__(self, id: str, name: str | None = None):
        self.received: list[Message] = []
        super().__init__(id, name or id, self.received.append)

    @property
    def ids(self) -> list[int]:
        return [m.id for m in self.received]

    async def wait_for(self, count: int, timeout: float = 5.0) -> list[Message]:
        await wait_until(lambda: len(self.received) >= count, timeout, f"{count} messages for {self.id}")
        return self.received


def text_message(sender: str, topics: str | list[str], text: str = "hi", **fields: Any) -> Message:
    tag = {"id": sender, "name": sender.title()}
    return Message.create(sender=tag, topics=topics, payload={"text": text}, **fields)
