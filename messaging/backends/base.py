"""The storage/notification contract every messaging backend implements.

Topics passed to a backend are full, namespaced names (`{namespace}:{topic}`).

Ordering and "since" semantics
    A topic's history is kept in *arrival order*: the order the backend stored messages.
    That is not id order: ids embed priority and the clock of the process that made them,
    so a later message may carry a smaller id. `get_messages_for_topic_since` therefore
    answers by *position* in the topic's stream ("everything stored after that message").
    When the id is not (or no longer) in the topic, it falls back to the messages whose
    `timestamp` is later than the id's timestamp.

Idempotence
    Storing a message whose id is already in a topic stores nothing more in that topic
    and notifies no one: a handler re-run after a crash (deterministic ids, see
    `messaging.ids.derive_id`) does not duplicate its output.

Subscriptions
    One subscription per topic per backend instance. The handler is a plain, non-blocking
    callable run in the event loop that subscribed, once per stored message, and every
    call gets its own `Message` object. One event loop per process owns the bus.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable

from messaging.message import Message

MessageHandler = Callable[[Message], None]


class MessagingBackend(ABC):
    @abstractmethod
    async def store_message(self, namespace: str, topics: list[str], message: Message) -> list[str] | None:
        """Store `message` once in each (namespaced) topic and notify their subscribers.

        Each stored copy has `topic_published_to` set to its un-namespaced topic. All or
        nothing: either every topic gets the message or none does.
        """

    @abstractmethod
    async def get_messages_for_topic(self, topic: str, limit: int | None = None) -> list[Message]:
        """The topic's history in arrival order, oldest first; with `limit`, the most recent `limit`."""

    @abstractmethod
    async def get_messages_for_topic_since(
        self, topic: str, msg_id_since: int, limit: int | None = None
    ) -> list[Message]:
        """Messages stored in `topic` after the message `msg_id_since`, by position, oldest first.

        With `limit`, the first `limit` of them (so a caller can page on). If the id is
        not in the topic: the messages whose timestamp is later than the id's timestamp.
        """

    @abstractmethod
    async def get_messages_by_id(self, namespace: str, ids: list[int]) -> list[Message]:
        """Messages by id, in the order asked; unknown or expired ids are skipped."""

    @abstractmethod
    async def subscribe(self, topic: str, handler: MessageHandler) -> None:
        """Call `handler` for every message stored in `topic` from now on (replaces an earlier handler)."""

    @abstractmethod
    async def unsubscribe(self, topic: str) -> None:
        """Stop notifications for `topic` (no error if not subscribed)."""

    @abstractmethod
    def subscribed_topics(self) -> frozenset[str]:
        """The topics this instance holds a subscription for (for tests and diagnostics)."""

    @abstractmethod
    async def cleanup(self) -> None:
        """Drop subscriptions and release connections; the instance is not used afterwards."""
