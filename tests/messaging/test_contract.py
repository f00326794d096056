"""The backend contract, run on both backends (memory always; Redis in the services pass).

Everything goes through the bus (MessagingInterface) as callers use it, plus a few direct
backend calls where the contract is the backend's own.
"""

from __future__ import annotations

import asyncio

import pytest

from messaging import topics
from messaging.bus import MessagingInterface
from messaging.clients import MessageTrackingClient
from messaging.config import MessagingConfig
from messaging.errors import InvalidMessage, PayloadTooLarge, UnknownBackend
from messaging.ids import Priority, encode_id, id_timestamp_ms, new_id
from messaging.message import Message
from messaging.topics import agent_self_inbox

from .conftest import Collector, text_message, unique, wait_until


async def test_publish_reaches_a_subscriber(make_bus):
    bus = make_bus()
    alice = Collector("alice")
    await bus.subscribe("updates", alice)
    sent = text_message("bob", "updates", "hello")
    returned = await bus.publish(sent)
    assert returned is sent
    [got] = await alice.wait_for(1)
    assert got == sent.model_copy(update={"topic_published_to": "updates"})
    assert got.topic_published_to == "updates"


async def test_an_ephemeral_publish_reaches_who_listens_now_and_is_kept_nowhere(make_bus):
    """Token streams and presence: delivered live, in no history, nothing for a later subscriber."""
    bus = make_bus()
    now = Collector("now")
    await bus.subscribe("stream", now)
    token = text_message("llm", "stream", "tok")
    await bus.publish(token, ephemeral=True)
    await now.wait_for(1)
    assert now.ids == [token.id]
    assert now.received[0].topic_published_to == "stream"
    assert await bus.get_messages("stream") == []
    assert await bus.get_messages_by_id([token.id]) == []
    later = Collector("later")
    await bus.subscribe("stream", later)
    final = await bus.publish(text_message("llm", "stream", "the whole answer"))
    await later.wait_for(1)
    assert later.ids == [final.id]  # the stored final message, not the token before it
    assert [m.id for m in await bus.get_messages("stream")] == [final.id]


async def test_tracking_client_handles_by_priority_then_id(make_bus):
    bus = make_bus()
    gate = asyncio.Event()
    handled: list[Message] = []

    async def handler(message: Message) -> None:
        if not handled:
            await gate.wait()  # hold the first message so the rest queue up
        handled.append(message)

    worker = MessageTrackingClient("worker", "Worker", handler)
    await bus.subscribe("jobs", worker)
    first = await bus.publish(text_message("boss", "jobs", "first"))
    await wait_until(lambda: worker._task is not None and worker.waiting == 0, what="first message taken")
    queued = [
        text_message("boss", "jobs", "low-1", priority=Priority.LOW),
        text_message("boss", "jobs", "normal-1", priority=Priority.NORMAL),
        text_message("boss", "jobs", "urgent", priority=Priority.URGENT),
        text_message("boss", "jobs", "low-2", priority=Priority.LOW),
        text_message("boss", "jobs", "high", priority=Priority.HIGH),
        text_message("boss", "jobs", "normal-2", priority=Priority.NORMAL),
    ]
    for message in queued:
        await bus.publish(message)
    await wait_until(lambda: worker.waiting == len(queued), what="all queued")
    gate.set()
    await wait_until(lambda: len(handled) == 1 + len(queued), what="all handled")
    await worker.idle()
    texts = [m.payload["text"] for m in handled]
    assert texts == ["first", "urgent", "high", "normal-1", "normal-2", "low-1", "low-2"]
    assert worker.last_processed_id == queued[3].id
    assert handled[0].id == first.id
    await worker.close()


async def test_history_is_in_arrival_order(make_bus):
    bus = make_bus()
    now_ms = id_timestamp_ms(new_id())
    # Stored in this order, though the ids say otherwise (older clock, higher priority).
    late_id = text_message("a", "log", "stored first", id=encode_id(now_ms, 7, 3, 0))
    early_id = text_message("a", "log", "stored second", id=encode_id(now_ms - 5_000, 0, 3, 0))
    third = text_message("a", "log", "stored third")
    for m in (late_id, early_id, third):
        await bus.publish(m)
    history = await bus.get_messages("log")
    assert [m.payload["text"] for m in history] == ["stored first", "stored second", "stored third"]
    assert [m.id for m in await bus.get_messages("log", limit=2)] == [early_id.id, third.id]
    assert await bus.get_messages("log", limit=0) == []
    assert await bus.get_messages("nothing-here") == []


async def test_since_is_by_position_not_by_id(make_bus):
    bus = make_bus()
    a = text_message("s", "t", "a")
    b = text_message("s", "t", "b")
    await bus.publish(a)
    await bus.publish(b)
    # Stored later but with a smaller id (urgent, and from a clock 2 s behind).
    urgent_late = text_message("s", "t", "urgent-late", id=encode_id(id_timestamp_ms(a.id) - 2_000, 0, 9, 0))
    await bus.publish(urgent_late)
    c = text_message("s", "t", "c")
    await bus.publish(c)
    since_a = await bus.get_messages_for_topic_since("t", a.id)
    assert [m.payload["text"] for m in since_a] == ["b", "urgent-late", "c"]
    since_b = await bus.get_messages_for_topic_since("t", b.id, limit=2)
    assert [m.payload["text"] for m in since_b] == ["urgent-late", "c"]
    assert await bus.get_messages_for_topic_since("t", c.id) == []
    since_urgent = await bus.get_messages_for_topic_since("t", urgent_late.id)
    assert [m.payload["text"] for m in since_urgent] == ["c"]


async def test_since_unknown_id_falls_back_to_timestamps(make_bus):
    bus = make_bus()
    old = text_message("s", "t", "old", timestamp=id_timestamp_ms(new_id()) - 60_000)
    await bus.publish(old)
    recent = text_message("s", "t", "recent")
    await bus.publish(recent)
    never_stored = encode_id(id_timestamp_ms(recent.id) - 30_000, 4, 0, 0)
    found = await bus.get_messages_for_topic_since("t", never_stored)
    assert [m.payload["text"] for m in found] == ["recent"]
    future = encode_id(id_timestamp_ms(recent.id) + 60_000, 4, 0, 0)
    assert await bus.get_messages_for_topic_since("t", future) == []


async def test_get_messages_by_id(make_bus):
    bus = make_bus()
    sent = [await bus.publish(text_message("s", ["t1", "t2"] if i % 2 else "t1", str(i))) for i in range(4)]
    wanted = [sent[2].id, new_id(), sent[0].id, sent[3].id]
    found = await bus.get_messages_by_id(wanted)
    assert [m.id for m in found] == [sent[2].id, sent[0].id, sent[3].id]
    assert await bus.get_messages_by_id([]) == []


async def test_history_limit(make_bus):
    bus = make_bus(max_history=3)
    base = id_timestamp_ms(new_id())
    sent = [await bus.publish(text_message("s", "t", str(i), id=encode_id(base + 10 * i, 4, 1, 0))) for i in range(6)]
    history = await bus.get_messages("t")
    assert [m.id for m in history] == [m.id for m in sent[-3:]]
    # The first message was trimmed: since falls back to its timestamp.
    since_trimmed = await bus.get_messages_for_topic_since("t", sent[0].id)
    assert [m.id for m in since_trimmed] == [m.id for m in sent[-3:]]


async def test_the_guilds_bookkeeping_topics_keep_a_short_history(make_bus, settings):
    # Heartbeats and health reports pile up with every round; only the latest are of use.
    settings.GUILDSITE_STATUS_HISTORY_LIMIT = 10
    bus = make_bus(max_history=50)
    for i in range(15):
        await bus.publish(text_message("s", [topics.GUILD_STATUS_TOPIC, "chat"], str(i)))
    assert [m.payload["text"] for m in await bus.get_messages(topics.GUILD_STATUS_TOPIC)] == [str(i) for i in range(5, 15)]
    assert len(await bus.get_messages("chat")) == 15


async def test_ttl_expiry(make_bus):
    bus = make_bus(message_ttl=0.15)
    sent = await bus.publish(text_message("s", "t", "short-lived"))
    assert [m.id for m in await bus.get_messages("t")] == [sent.id]
    found: list = [None]

    async def poll() -> None:
        while True:
            found[0] = (await bus.get_messages("t"), await bus.get_messages_by_id([sent.id]))
            if found[0] == ([], []):
                return
            await asyncio.sleep(0.02)

    await asyncio.wait_for(poll(), timeout=5)


async def test_multi_topic_publish_stores_each_copy_and_delivers_once(make_bus):
    bus = make_bus()
    both = Collector("both")
    only_b = Collector("only-b")
    await bus.subscribe("a", both)
    await bus.subscribe("b", both)
    await bus.subscribe("b", only_b)
    sent = await bus.publish(text_message("s", ["a", "b", "a"], "multi"))
    await only_b.wait_for(1)
    await both.wait_for(1)
    marker = await bus.publish(text_message("s", "b", "marker"))
    await both.wait_for(2)
    assert both.ids == [sent.id, marker.id]  # the multi-topic message arrived once
    [in_a] = await bus.get_messages("a")
    [in_b, _] = await bus.get_messages("b")
    assert in_a.id == in_b.id == sent.id
    assert (in_a.topic_published_to, in_b.topic_published_to) == ("a", "b")


async def test_store_is_all_or_nothing(make_bus):
    bus = make_bus()
    backend = await bus.get_backend()
    ns = bus.namespace
    message = text_message("s", ["a", "b"])
    with pytest.raises(ValueError):
        # The second topic is not in the namespace: rejected before anything is stored.
        await backend.store_message(ns, [f"{ns}:a", "elsewhere:b"], message)
    assert await bus.get_messages("a") == []
    assert await bus.get_messages_by_id([message.id]) == []


async def test_storing_the_same_message_twice_is_a_no_op(make_bus):
    bus = make_bus()
    c = Collector("c")
    await bus.subscribe("t", c)
    m = text_message("s", "t")
    await bus.publish(m)
    await bus.publish(m)
    marker = await bus.publish(text_message("s", "t", "marker"))
    await c.wait_for(2)
    assert c.ids == [m.id, marker.id]
    assert [x.id for x in await bus.get_messages("t")] == [m.id, marker.id]


async def test_namespaces_never_cross(make_bus):
    guild1 = make_bus(unique("guild1-"))
    guild2 = make_bus(unique("guild2-"))
    c1 = Collector("agent")
    c2 = Collector("agent")
    await guild1.subscribe("default_topic", c1)
    await guild2.subscribe("default_topic", c2)
    m1 = await guild1.publish(text_message("x", "default_topic", "for guild 1"))
    m2 = await guild2.publish(text_message("x", "default_topic", "for guild 2"))
    await c1.wait_for(1)
    await c2.wait_for(1)
    marker = await guild1.publish(text_message("x", "default_topic", "marker"))
    await c1.wait_for(2)
    assert c1.ids == [m1.id, marker.id]
    assert c2.ids == [m2.id]
    assert [m.id for m in await guild2.get_messages("default_topic")] == [m2.id]
    assert await guild2.get_messages_by_id([m1.id]) == []
    # m1 is not in guild 2's topic: the timestamp fallback may find m2, never m1.
    assert {m.id for m in await guild2.get_messages_for_topic_since("default_topic", m1.id)} <= {m2.id}


async def test_lazy_subscription_with_reference_counting(make_bus):
    bus = make_bus()
    other_bus = MessagingInterface(bus.namespace, bus.config)  # same guild, same process
    try:
        backend = await bus.get_backend()
        assert await other_bus.get_backend() is backend  # one backend per config per loop
        calls: list[str] = []
        real_subscribe = backend.subscribe

        async def counting_subscribe(topic, handler):
            calls.append(topic)
            await real_subscribe(topic, handler)

        backend.subscribe = counting_subscribe  # type: ignore[method-assign]
        full = f"{bus.namespace}:t"
        one, two, three = Collector("one"), Collector("two"), Collector("three")
        await bus.register_client(one)
        assert full not in backend.subscribed_topics()  # registering subscribes nothing
        await bus.subscribe("t", one)
        assert full in backend.subscribed_topics()
        await bus.subscribe("t", two)
        await other_bus.subscribe("t", three)
        assert calls == [full]  # one backend subscription for three clients on two interfaces
        await bus.unsubscribe("t", one)
        await bus.unsubscribe("t", two)
        assert full in backend.subscribed_topics()
        m = await bus.publish(text_message("s", "t"))
        await three.wait_for(1)
        assert one.ids == two.ids == []
        await other_bus.unregister_client(three)  # clean-up on disconnect
        assert full not in backend.subscribed_topics()
        assert three.ids == [m.id]
    finally:
        await other_bus.shutdown()


async def test_unregister_unsubscribes_everything(make_bus):
    bus = make_bus()
    backend = await bus.get_backend()
    c = Collector("c")
    for topic in ("a", "b", "c"):
        await bus.subscribe(topic, c)
    assert bus.topics_of("c") == {"a", "b", "c"}
    await bus.unregister_client(c)
    assert bus.topics_of("c") == frozenset()
    assert not {f"{bus.namespace}:{t}" for t in "abc"} & backend.subscribed_topics()
    await bus.publish(text_message("s", "a"))
    await asyncio.sleep(0.05)  # give a (wrong) delivery the chance to happen
    assert c.received == []


async def test_sender_does_not_receive_its_own_message(make_bus):
    bus = make_bus()
    me, other = Collector("me"), Collector("other")
    await bus.subscribe("t", me)
    await bus.subscribe("t", other)
    mine = await bus.publish(text_message("me", "t", "mine"), sender=me)
    theirs = await bus.publish(text_message("other", "t", "theirs"))
    await me.wait_for(1)
    await other.wait_for(1)
    assert me.ids == [theirs.id]
    assert other.ids == [mine.id]


async def test_self_inbox_reaches_only_the_sender(make_bus):
    bus = make_bus()
    topic = agent_self_inbox("me")
    me, other = Collector("me"), Collector("other")
    await bus.subscribe(topic, me)
    await bus.subscribe(topic, other)
    note = await bus.publish(text_message("me", topic, "ready"))
    await me.wait_for(1)
    marker = await bus.publish(text_message("third", topic, "from elsewhere"))
    await asyncio.sleep(0.05)
    assert me.ids == [note.id]
    assert marker.id not in other.ids
    assert note.id not in other.ids


async def test_receivers_get_their_own_objects(make_bus):
    bus = make_bus()
    a, b = Collector("a"), Collector("b")
    await bus.subscribe("t", a)
    await bus.subscribe("t", b)
    sent = await bus.publish(text_message("s", "t", "shared?", session_state={"k": [1]}))
    [got_a] = await a.wait_for(1)
    [got_b] = await b.wait_for(1)
    assert got_a is not got_b
    assert got_a is not sent
    assert got_b is not sent
    got_a.payload["text"] = "changed by a"
    got_a.session_state["k"].append(2)
    assert got_b.payload["text"] == sent.payload["text"] == "shared?"
    assert got_b.session_state == sent.session_state == {"k": [1]}


async def test_enrich_with_history(make_bus):
    bus = make_bus()
    earlier = [await bus.publish(text_message("s", "hist", f"step {i}", session_state={"secret": i})) for i in range(3)]
    c = Collector("c")
    await bus.subscribe("t", c)
    history = [
        {"agent": {"id": "s"}, "origin": m.id, "result": m.id, "processor": "p"} for m in earlier
    ]
    sent = await bus.publish(text_message("s", "t", "with history", message_history=history, enrich_with_history=2))
    [got] = await c.wait_for(1)
    assert got.id == sent.id
    enriched = [Message.from_json(item) for item in got.session_state["enriched_history"]]
    assert [m.id for m in enriched] == [earlier[1].id, earlier[2].id]
    assert all(m.session_state is None for m in enriched)
    assert sent.session_state is None  # the sender's object is untouched


async def test_get_messages_for_client_since(make_bus):
    bus = make_bus()
    c = Collector("c")
    await bus.subscribe("a", c)
    await bus.subscribe("b", c)
    start = await bus.publish(text_message("s", ["a", "b"], "start"))
    m1 = await bus.publish(text_message("s", "a", "1"))
    m2 = await bus.publish(text_message("s", ["a", "b"], "2"))
    m3 = await bus.publish(text_message("s", "b", "3"))
    await bus.publish(text_message("s", "elsewhere", "not subscribed"))
    found = await bus.get_messages_for_client_since("c", start.id)
    assert [m.id for m in found] == sorted([m1.id, m2.id, m3.id])
    assert await bus.get_messages_for_client_since("nobody", start.id) == []


async def test_payload_over_the_limit_is_refused_and_nothing_stored(make_bus, settings):
    settings.GUILDSITE_MESSAGE_MAX_BYTES = 2048
    bus = make_bus()
    c = Collector("c")
    await bus.subscribe("t", c)
    big = text_message("s", "t", "x" * 4096)
    with pytest.raises(PayloadTooLarge) as info:
        await bus.publish(big)
    assert info.value.limit == 2048
    assert info.value.size > 2048
    ok = await bus.publish(text_message("s", "t", "small"))
    await c.wait_for(1)
    assert c.ids == [ok.id]
    assert [m.id for m in await bus.get_messages("t")] == [ok.id]
    assert await bus.get_messages_by_id([big.id]) == []


async def test_publish_rejects_what_is_not_a_message(make_bus):
    bus = make_bus()
    with pytest.raises(InvalidMessage):
        await bus.publish({"topics": "t"})  # type: ignore[arg-type]


def test_unknown_backend_is_refused_at_construction():
    config = MessagingConfig(backend_module="os", backend_class="system")
    with pytest.raises(UnknownBackend, match="accepted"):
        MessagingInterface("g1", config)


async def test_backend_handler_gets_a_fresh_object_per_call(make_bus):
    bus = make_bus()
    backend = await bus.get_backend()
    got: list[Message] = []
    full = f"{bus.namespace}:raw"
    await backend.subscribe(full, got.append)
    await backend.subscribe(f"{bus.namespace}:raw2", got.append)
    m = text_message("s", ["raw", "raw2"])
    await backend.store_message(bus.namespace, [full, f"{bus.namespace}:raw2"], m)
    await wait_until(lambda: len(got) == 2, what="two deliveries")
    assert got[0] is not got[1]
    assert got[0] is not m
    assert {g.topic_published_to for g in got} == {"raw", "raw2"}
    await backend.unsubscribe(full)
    await backend.unsubscribe(f"{bus.namespace}:raw2")
    assert not backend.subscribed_topics() & {full}
