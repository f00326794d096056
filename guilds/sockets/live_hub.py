"""The live hub of a process: follows each live topic once on the live bus, for every live socket of the process.

A socket that subscribes to a topic adds itself to the topic's followers; the first follower subscribes the
hub on the bus, the last to leave unsubscribes it. An event is serialised once per topic and handed to each
follower once, however many of its topics the follower follows (the frame names the first of them). The hub
lives on the runtime loop, with the bus; followers are told there (LiveFollower.take must not block).
"""

from __future__ import annotations

import asyncio
import logging
import uuid
import weakref
from typing import Protocol

from guilds.runtime import live
from guilds.sockets.envelope import envelope
from messaging.clients import SimpleClient
from messaging.message import Message

logger = logging.getLogger(__name__)


class LiveFollower(Protocol):
    def take(self, frame: bytes, event: Message) -> None:
        """One event's frame (and the event, to filter on), on the hub's loop. Must not block."""


class LiveHub:
    def __init__(self) -> None:
        self.bus = live.live_bus()
        self.client = SimpleClient(id=f"live-hub:{uuid.uuid4().hex[:12]}", name="live hub", handler=self._event)
        self.followers: dict[str, set[LiveFollower]] = {}
        self.lock = asyncio.Lock()  # a topic's first follower and its last do not cross on the bus
        self.registered = False

    async def follow(self, topic: str, follower: LiveFollower) -> None:
        async with self.lock:
            if not self.registered:
                await self.bus.register_client(self.client)
                self.registered = True
            followers = self.followers.get(topic)
            if followers is None:
                await self.bus.subscribe(topic, self.client)
                self.followers[topic] = followers = set()
            followers.add(follower)

    async def unfollow(self, topics: list[str], follower: LiveFollower) -> None:
        """Stop telling `follower` about `topics`: at once, whatever the bus then does."""
        emptied = []
        for topic in topics:
            followers = self.followers.get(topic)
            if followers is not None:
                followers.discard(follower)
                if not followers:
                    emptied.append(topic)
        if not emptied:
            return
        async with self.lock:
            for topic in emptied:
                if self.followers.get(topic):  # followed again meanwhile
                    continue
                self.followers.pop(topic, None)
                try:
                    await self.bus.unsubscribe(topic, self.client)
                except Exception:  # nobody is told; the next follower subscribes it again
                    logger.warning("live hub could not unsubscribe %s", topic, exc_info=True)

    def _event(self, message: Message) -> None:
        told: set[LiveFollower] = set()
        ts = message.timestamp // 1000
        for topic in message.topic_list:
            followers = self.followers.get(topic)
            if not followers:
                continue
            frame = None
            for follower in list(followers):
                if follower in told:
                    continue
                told.add(follower)
                if frame is None:
                    frame = envelope(message.format, topic, message.payload, id=str(message.id), ts=ts)
                try:
                    follower.take(frame, message)
                except Exception:  # one follower's trouble is not the others'
                    logger.exception("a live socket failed to take an event")


_hubs: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, LiveHub] = weakref.WeakKeyDictionary()


async def live_hub() -> LiveHub:
    """The hub of the running loop (call it on the runtime loop)."""
    loop = asyncio.get_running_loop()
    hub = _hubs.get(loop)
    if hub is None:
        hub = _hubs[loop] = LiveHub()
    return hub
