"""The message bus (seed 002's MessagingInterface): the one way anything talks to anything.

One `MessagingInterface` per guild namespace (and caller); clients subscribe to logical
topics, the bus namespaces them (`{namespace}:{topic}`) and stores every published
message once per topic through the backend.

Backends are shared: one instance per distinct `MessagingConfig.config_key()` per event
loop in a process, released when the last interface using it shuts down. Backend
subscriptions are lazy and reference-counted across every interface sharing the backend:
the first local client of a topic subscribes the backend, the last one to leave
unsubscribes it.

Delivery rules (all of them live in this module):

* the sender never receives its own message (client id == `message.sender.id`) ...
* ... except on `agent_self_inbox:*` topics, where only that client receives it;
* every receiving client gets its own Message object (never the sender's, never another
  receiver's);
* a message published to several topics a client subscribes to reaches it once;
* an ephemeral publish (`ephemeral=True`: token streams, presence) reaches the clients subscribed now
  and is kept nowhere: no topic history, no inbox, nothing a late subscriber catches up on;
* with durable delivery (agents in Celery workers, `messaging.delivery`), given to the bus by the
  engine that builds it, a stored message also goes into its durable subscribers' inboxes, in the same
  atomic step, and the agents with work newly due are woken (or collected by the publisher);
* a stand-in (`messaging.delivery.StandIn`, given by the engine) does a subscriber's whole handling of a
  message for it while it has nothing waiting or under way: with durable delivery, in the store script;
  for a local client, when the backend hands messages out as it stores them (in-process), by publishing
  its copy right after the message, which the client then does not get;
* `enrich_with_history=N`: before delivery, the last N `message_history[*].origin`
  messages are loaded by id and put, as JSON strings, in `session_state["enriched_history"]`
  (such a message is handed out after that lookup, so it may overtake or be overtaken by
  messages published just after it; tracking clients still order what is waiting).
"""

from __future__ import annotations

import asyncio
import logging
import threading
import weakref
from collections.abc import Callable
from functools import partial

from messaging.backends.base import MessagingBackend
from messaging.clients import Client, RecentIds
from messaging.config import MessagingConfig, create_backend, site_default_config
from messaging.delivery import DurableDelivery, StandIn, Woken
from messaging.errors import InvalidMessage, MessagingError
from messaging.message import Message
from messaging.topics import is_self_inbox, namespaced

logger = logging.getLogger(__name__)

# Ids remembered per client to deliver multi-topic messages once: the copies arrive together.
_RECENT_PER_CLIENT, _RECENT_HORIZON_S = 4096, 60.0


class _SharedBackend:
    """A backend instance and the local subscriptions of every interface that uses it."""

    def __init__(self, key: tuple[str, int], backend: MessagingBackend, loop: asyncio.AbstractEventLoop):
        self.key = key
        self.backend = backend
        self.loop_ref = weakref.ref(loop)
        self.users = 0
        # namespaced topic -> {(interface id, client id): (interface, client)}
        self.subscribers: dict[str, dict[tuple[int, str], tuple[MessagingInterface, Client]]] = {}
        self.lock = asyncio.Lock()

    def dispatch(self, full_topic: str, message: Message) -> None:
        """The backend's handler for `full_topic`: hand the message to local clients."""
        subscribers = self.subscribers.get(full_topic)
        if not subscribers:
            return
        receivers = [(bus, client) for bus, client in list(subscribers.values()) if bus._accepts(client, message)]
        if not receivers:
            return
        if message.enrich_with_history > 0 and message.message_history:
            bus = receivers[0][0]
            bus._spawn(bus._enrich_then_hand_out(receivers, message))
        else:
            _hand_out(receivers, message, full_topic)


def _hand_out(receivers: list[tuple[MessagingInterface, Client]], message: Message, topic: str) -> None:
    for index, (_, client) in enumerate(receivers):
        # The first receiver takes the backend's object (nobody else holds it); others a copy.
        copy = message if index == 0 else message.clone()
        try:
            client.notify_new_message(copy)
        except Exception:
            logger.exception("client %s failed to take message %s from topic %s", client.id, message.id, topic)


_registry: dict[tuple[str, int], _SharedBackend] = {}
_registry_lock = threading.Lock()


def _acquire(config: MessagingConfig) -> _SharedBackend:
    loop = asyncio.get_running_loop()
    key = (config.config_key(), id(loop))
    with _registry_lock:
        shared = _registry.get(key)
        if shared is None or shared.loop_ref() is not loop:
            shared = _SharedBackend(key, create_backend(config), loop)
            _registry[key] = shared
        shared.users += 1
        return shared


def _release(shared: _SharedBackend) -> bool:
    """Drop one user; True if it was the last (the caller then cleans the backend up)."""
    with _registry_lock:
        shared.users -= 1
        if shared.users > 0:
            return False
        if _registry.get(shared.key) is shared:
            del _registry[shared.key]
        return True


class MessagingInterface:
    def __init__(self, namespace: str, config: MessagingConfig | None = None, *,
                 delivery: DurableDelivery | None = None,
                 on_publish: Callable[[str, Message], None] | None = None, stand_in: StandIn | None = None):
        if not namespace or ":" in namespace:
            raise ValueError(f"namespace must be non-empty and contain no ':', got {namespace!r}")
        from django.conf import settings

        self.namespace = namespace
        self.delivery = delivery
        # Told of every publish (namespace, message), synchronously: the engine's activity record. Keep it cheap.
        self.on_publish = on_publish
        self.stand_in = stand_in
        self.config = config if config is not None else site_default_config()
        self.config.canonical()  # UnknownBackend now rather than at first use
        self.max_message_bytes: int = settings.GUILDSITE_MESSAGE_MAX_BYTES
        self._shared: _SharedBackend | None = None
        self._clients: dict[str, Client] = {}
        self._topics_of: dict[str, set[str]] = {}  # client id -> logical topics
        self._recent: dict[str, RecentIds] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._closed = False

    def __repr__(self) -> str:
        return f"MessagingInterface(namespace={self.namespace!r})"

    async def get_backend(self) -> MessagingBackend:
        """The (shared) backend instance this interface uses in the running loop."""
        return self._hub().backend

    def _hub(self) -> _SharedBackend:
        if self._closed:
            raise RuntimeError(f"messaging interface for namespace {self.namespace} is shut down")
        if self._shared is None:
            self._shared = _acquire(self.config)
        return self._shared

    # --- clients and subscriptions ---------------------------------------------------

    async def register_client(self, client: Client) -> None:
        known = self._clients.get(client.id)
        if known is client:
            return
        if known is not None:
            raise ValueError(f"a client with id {client.id!r} is already registered in {self.namespace}")
        self._clients[client.id] = client
        self._topics_of[client.id] = set()
        self._recent[client.id] = RecentIds(_RECENT_PER_CLIENT, _RECENT_HORIZON_S)

    async def unregister_client(self, client: Client) -> None:
        """Unsubscribe the client from everything and forget it (e.g. on disconnect)."""
        if self._clients.get(client.id) is not client:
            return
        for topic in list(self._topics_of.get(client.id, ())):
            await self.unsubscribe(topic, client)
        self._clients.pop(client.id, None)
        self._topics_of.pop(client.id, None)
        self._recent.pop(client.id, None)

    async def subscribe(self, topic: str, client: Client) -> None:
        if not isinstance(topic, str) or not topic:
            raise ValueError("topic must be a non-empty string")
        await self.register_client(client)
        topics = self._topics_of[client.id]
        if topic in topics:
            return
        hub = self._hub()
        full = namespaced(self.namespace, topic)
        async with hub.lock:
            subscribers = hub.subscribers.setdefault(full, {})
            first = not subscribers
            subscribers[(id(self), client.id)] = (self, client)
            topics.add(topic)
            if first:
                try:
                    await hub.backend.subscribe(full, partial(hub.dispatch, full))
                except BaseException:
                    subscribers.pop((id(self), client.id), None)
                    if not subscribers:
                        hub.subscribers.pop(full, None)
                    topics.discard(topic)
                    raise
                logger.debug("backend subscribed to %s (namespace %s)", topic, self.namespace)

    async def unsubscribe(self, topic: str, client: Client) -> None:
        topics = self._topics_of.get(client.id)
        if not topics or topic not in topics:
            return
        topics.discard(topic)
        hub = self._hub()
        full = namespaced(self.namespace, topic)
        async with hub.lock:
            subscribers = hub.subscribers.get(full)
            if subscribers is None:
                return
            subscribers.pop((id(self), client.id), None)
            if not subscribers:
                del hub.subscribers[full]
                await hub.backend.unsubscribe(full)
                logger.debug("backend unsubscribed from %s (namespace %s)", topic, self.namespace)

    def topics_of(self, client_id: str) -> frozenset[str]:
        return frozenset(self._topics_of.get(client_id, ()))

    # --- delivery rules --------------------------------------------------------------

    def _accepts(self, client: Client, message: Message) -> bool:
        """Whether `client` gets `message` (and, if so, remember it was delivered)."""
        recent = self._recent.get(client.id)
        if recent is None or self._clients.get(client.id) is not client:
            return False  # unregistered meanwhile
        topic = message.topic_published_to or ""
        if is_self_inbox(topic):
            if client.id != message.sender.id:
                return False
        elif client.id == message.sender.id:
            return False
        return recent.add(message.id)

    def _spawn(self, coro: object) -> None:
        task = asyncio.get_running_loop().create_task(coro)  # type: ignore[arg-type]
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _enrich_then_hand_out(self, receivers: list[tuple[MessagingInterface, Client]], message: Message) -> None:
        try:
            await self._enrich(message)
        except MessagingError as exc:
            logger.warning(
                "history for message %s not loaded (namespace %s): %s; delivered without it",
                message.id, self.namespace, exc,
            )
        _hand_out(receivers, message, message.topic_published_to or "")

    async def _enrich(self, message: Message) -> None:
        wanted = [entry.origin for entry in message.message_history[-message.enrich_with_history :]]
        found = await self._hub().backend.get_messages_by_id(self.namespace, wanted)
        history = [m.model_copy(update={"session_state": None}).to_json().decode() for m in found]
        state = dict(message.session_state or {})
        state["enriched_history"] = history
        message.session_state = state

    # --- publishing ------------------------------------------------------------------

    async def publish(self, message: Message, sender: Client | None = None, *, ephemeral: bool = False,
                      collect_woken: Woken | None = None) -> Message:
        """Store `message` in each of its topics (namespaced) and notify subscribers; `ephemeral`: notify
        only, store nothing. With durable delivery, agents with work newly due go to `collect_woken` when
        given (the caller drains them), else to the delivery's waker.

        Raises PayloadTooLarge (nothing stored) when its JSON exceeds
        `settings.GUILDSITE_MESSAGE_MAX_BYTES`; BackendUnavailable if the backend is down.
        """
        if not isinstance(message, Message):
            raise InvalidMessage(f"invalid message: expected a Message, got {type(message).__name__}")
        topics = list(dict.fromkeys(message.topic_list))  # each topic once
        full = [namespaced(self.namespace, t) for t in topics]
        backend = self._hub().backend
        if self.on_publish is not None:
            self.on_publish(self.namespace, message)
        if ephemeral:
            await backend.broadcast(self.namespace, full, message, self.max_message_bytes)
            return message
        stand_ins = self.stand_in(message) if self.stand_in is not None else []
        standing_in: list[tuple[str, Message]] = []
        if self.delivery is not None:
            extension = self.delivery.store_extension(backend, self.namespace, message,
                                                      collecting=collect_woken is not None, stand_ins=stand_ins)
        else:
            extension = None
            if stand_ins and backend.hands_out_on_store:
                standing_in = self._standing_in_locally(message, stand_ins)
        try:
            woken = await backend.store_message(self.namespace, full, message, self.max_message_bytes, extension)
        except BaseException:
            for client_id, _ in standing_in:  # nothing was stored: a later publish of it reaches them
                if (recent := self._recent.get(client_id)) is not None:
                    recent.discard(message.id)
            raise
        for _, copy in standing_in:
            await self.publish(copy)
        if woken:  # durable subscribers (agents in Celery workers) with work newly due
            self.delivery.woken(self.namespace, woken, collect_woken)
        if logger.isEnabledFor(logging.DEBUG):
            logger.debug(
                "published message %s to %s (namespace %s, sender %s)", message.id, topics, self.namespace,
                sender.id if sender is not None else message.sender.id,
            )
        return message

    def _standing_in_locally(self, message: Message,
                             stand_ins: list[tuple[str, str, str, Message]]) -> list[tuple[str, Message]]:
        """(client id, copy) for each local client with a stand-in and nothing waiting or under way, each
        client marked as handed the message (the store then passes it by). The copies are published right after
        the message, with no wait on I/O between (the backend hands out as it stores): nothing can come before
        them, so the client's order holds."""
        standing_in = []
        for topic, client_id, copy_topic, copy in stand_ins:
            client, recent = self._clients.get(client_id), self._recent.get(client_id)
            if (client is None or recent is None or topic not in self._topics_of[client_id]
                    or getattr(client, "busy", True) or message.id in recent):
                continue
            stored_as = copy.model_copy(update={"topic_published_to": copy_topic}).to_json()
            if len(stored_as) > self.max_message_bytes:
                continue  # it could not be stored: the client gets the message itself, and answers as it does
            recent.add(message.id)
            standing_in.append((client_id, copy))
        return standing_in

    # --- history ---------------------------------------------------------------------

    async def get_messages(self, topic: str, limit: int | None = None) -> list[Message]:
        """The topic's history, oldest first (the most recent `limit` if given)."""
        return await self._hub().backend.get_messages_for_topic(namespaced(self.namespace, topic), limit)

    async def get_messages_for_topic_since(self, topic: str, msg_id: int, limit: int | None = None) -> list[Message]:
        """Messages stored in `topic` after message `msg_id` (by position; see backends.base)."""
        return await self._hub().backend.get_messages_for_topic_since(
            namespaced(self.namespace, topic), msg_id, limit
        )

    async def get_messages_for_client_since(self, client_id: str, msg_id: int) -> list[Message]:
        """Since-`msg_id` messages across the client's topics, once each, ordered by id."""
        topics = sorted(self._topics_of.get(client_id, ()))
        if not topics:
            return []
        results = await asyncio.gather(*(self.get_messages_for_topic_since(t, msg_id) for t in topics))
        merged: dict[int, Message] = {}
        for messages in results:
            for message in messages:
                merged.setdefault(message.id, message)
        return [merged[i] for i in sorted(merged)]

    async def get_messages_by_id(self, ids: list[int]) -> list[Message]:
        return await self._hub().backend.get_messages_by_id(self.namespace, list(ids))

    # --- lifecycle -------------------------------------------------------------------

    async def shutdown(self) -> None:
        """Unregister every client, and release the backend (closed with its last user)."""
        if self._closed:
            return
        for client in list(self._clients.values()):
            await self.unregister_client(client)
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        self._closed = True
        shared, self._shared = self._shared, None
        if shared is not None and _release(shared):
            await shared.backend.cleanup()
