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
from typing import TYPE_CHECKING

from messaging.errors import InvalidBackendConfig, PayloadTooLarge
from messaging.message import Message
from messaging.topics import strip_namespace

if TYPE_CHECKING:
    from messaging.delivery import StoreExtension

MessageHandler = Callable[[Message], None]


def topic_copies(namespace: str, topics: list[str], message: Message, max_bytes: int | None) -> list[tuple[str, str, bytes]]:
    """(namespaced topic, logical topic, JSON) of each topic's copy of `message`, with
    `topic_published_to` set: the one serialisation a publish needs per topic. PayloadTooLarge
    (before anything is stored) if a copy is over `max_bytes`."""
    copies = []
    for topic in topics:
        logical = strip_namespace(namespace, topic)
        data = message.model_copy(update={"topic_published_to": logical}).to_json()
        if max_bytes is not None and len(data) > max_bytes:
            raise PayloadTooLarge(len(data), max_bytes)
        copies.append((topic, logical, data))
    return copies


def site_bounded(max_history: int | None, message_ttl: float | None) -> tuple[int, float]:
    """A backend's (history per topic, seconds kept): what a spec asks for, never more than the site's limits
    (GUILDSITE_TOPIC_HISTORY_LIMIT, GUILDSITE_MESSAGE_TTL_SECONDS), so a spec cannot make the server keep more."""
    from django.conf import settings

    site_history, site_ttl = settings.GUILDSITE_TOPIC_HISTORY_LIMIT, float(settings.GUILDSITE_MESSAGE_TTL_SECONDS)
    history = site_history if max_history is None else int(max_history)
    ttl = site_ttl if message_ttl is None else float(message_ttl)
    if history < 1:
        raise InvalidBackendConfig(f"max_history must be at least 1, got {max_history}")
    if ttl <= 0:
        raise InvalidBackendConfig(f"message_ttl must be positive seconds, got {message_ttl}")
    return min(history, site_history), min(ttl, site_ttl)


class MessagingBackend(ABC):
    # Whether this process's subscribers have a stored message by the time store_message returns (so a bus
    # knows, between two publishes, everything its local clients have been handed).
    hands_out_on_store = False

    @abstractmethod
    async def store_message(self, namespace: str, topics: list[str], message: Message,
                            max_bytes: int | None = None, extension: StoreExtension | None = None) -> list[str]:
        """Store `message` once in each (namespaced) topic and notify their subscribers.

        Each stored copy has `topic_published_to` set to its un-namespaced topic (`topic_copies`).
        All or nothing: either every topic gets the message or none does; none does when a
        copy's JSON is over `max_bytes` (PayloadTooLarge). An `extension` (durable delivery) runs
        in the same atomic step; what it asks the caller to wake is returned.
        """

    @abstractmethod
    async def broadcast(self, namespace: str, topics: list[str], message: Message, max_bytes: int | None = None) -> None:
        """Notify the topics' subscribers of `message` without storing it anywhere (an ephemeral message:
        no history, no inbox, nothing to catch up on)."""

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
