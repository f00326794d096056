"""Durable delivery (the Celery engine's agents): inboxes, leases and wake-ups, against real Redis.

The delivery is built as an engine builds it, with a waker of the test's own that records who is
woken and lets the store script enqueue no task: nothing of the project is patched.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

import pytest

from messaging.bus import MessagingInterface
from messaging.delivery import DrainPush, DurableDelivery, Inbox, LeaseLost
from messaging.message import Message

from .conftest import text_message, unique

pytestmark = pytest.mark.services


@dataclass
class RecordingWaker:
    woken: list[tuple[str, list[str]]] = field(default_factory=list)

    def wake(self, namespace: str, agent_ids: list[str]) -> None:
        self.woken.append((namespace, list(agent_ids)))

    def drain_push(self, backend: object) -> DrainPush | None:
        return None


@pytest.fixture
def backend_name() -> str:
    return "redis"  # durable inboxes live in Redis only


@pytest.fixture
def waker() -> RecordingWaker:
    return RecordingWaker()


@pytest.fixture
async def bus(make_config, waker):
    bus = MessagingInterface(unique(), make_config(), delivery=DurableDelivery(waker))
    yield bus
    await bus.shutdown()


@pytest.fixture
async def inbox(bus) -> Inbox:
    inbox = bus.delivery.inbox(await bus.get_backend(), bus.namespace, "agent-1")
    await inbox.subscribe(["work"])
    return inbox


def ids(batch) -> list[int]:
    return [message_id for message_id, _ in batch.entries]


async def test_a_new_message_wakes_an_idle_agent_once(bus, inbox, waker):
    await bus.publish(text_message("someone", "work", "one"))
    await bus.publish(text_message("someone", "work", "two"))
    assert waker.woken == [(bus.namespace, ["agent-1"])]  # the second finds a drain already due
    assert await inbox.size() == 2


async def test_a_publisher_may_collect_the_woken_agents_instead(bus, inbox, waker):
    collected: list[tuple[str, str]] = []
    await bus.publish(text_message("someone", "work", "one"), collect_woken=collected)
    assert collected == [(bus.namespace, "agent-1")]
    assert waker.woken == []


async def test_the_sender_does_not_get_its_own_message(bus, inbox, waker):
    await bus.publish(text_message("agent-1", "work", "mine"))
    assert await inbox.size() == 0
    assert waker.woken == []


async def test_the_last_step_ends_the_drain_so_the_next_message_wakes_the_agent_again(bus, inbox, waker):
    first = await bus.publish(text_message("someone", "work", "one"))
    taken, _, _, batch = await inbox.begin("drainer-a", 3000, 10)
    assert taken
    assert ids(batch) == [first.id]
    assert Message.from_json(batch.entries[0][1]).payload == {"text": "one"}
    assert await inbox.step("drainer-a", ids(batch), 10) is None  # handled, nothing left: the drain is over
    assert await inbox.size() == 0
    assert (await inbox.begin("drainer-b", 3000, 10))[0]  # the lease was released with it
    await inbox.release_lease("drainer-b")
    await bus.publish(text_message("someone", "work", "two"))
    assert waker.woken == [(bus.namespace, ["agent-1"])] * 2


async def test_a_drain_whose_lease_lapsed_removes_nothing(bus, inbox):
    message = await bus.publish(text_message("someone", "work", "one"))
    taken, _, _, batch = await inbox.begin("stalled", 50, 10)
    assert taken
    # The lease lapses, as for a drain stalled longer than it: expire it now rather than wait.
    await inbox.redis.pexpire(inbox.keys.lease, 1)
    while await inbox.redis.exists(inbox.keys.lease):
        await asyncio.sleep(0.001)
    taken_over, _, _, again = await inbox.begin("successor", 3000, 10)
    assert taken_over
    assert ids(again) == [message.id]
    with pytest.raises(LeaseLost):
        await inbox.step("stalled", ids(batch), 10)
    assert await inbox.size() == 1  # still there for the successor
    assert await inbox.step("successor", ids(again), 10) is None


async def test_a_lost_lease_cannot_be_renewed(bus, inbox):
    await bus.publish(text_message("someone", "work", "one"))
    assert (await inbox.begin("first", 3000, 10))[0]
    await inbox.redis.set(inbox.keys.lease, "someone-else")  # another drain took the agent over
    assert not await inbox.renew_lease("first", 3000)


async def test_a_second_drain_waits_for_the_lease(bus, inbox):
    await bus.publish(text_message("someone", "work", "one"))
    assert (await inbox.begin("first", 3000, 10))[0]
    taken, left_ms, _, batch = await inbox.begin("second", 3000, 10)
    assert not taken
    assert batch.entries == []
    assert 0 < left_ms <= 3000


async def test_every_handling_begun_counts_an_attempt_until_the_message_is_removed(bus, inbox):
    first = await bus.publish(text_message("someone", "work", "one"))
    second = await bus.publish(text_message("someone", "work", "two"))
    _, _, _, batch = await inbox.begin("a", 3000, 10)
    assert (ids(batch), batch.attempts) == ([first.id, second.id], 1)
    await inbox.release_lease("a")  # as if the process died handling it
    _, _, _, batch = await inbox.begin("b", 3000, 10)
    assert batch.attempts == 2
    await inbox.record_failure(first.id, "it broke")
    assert await inbox.last_failure(first.id) == "it broke"
    following = await inbox.step("b", [first.id], 0, second.id)
    assert following.attempts == 1  # the next message's first handling
    assert await inbox.last_failure(first.id) is None  # handled: its record goes with it


async def test_an_outage_gives_the_attempt_back(bus, inbox):
    first = await bus.publish(text_message("someone", "work", "one"))
    assert (await inbox.begin("a", 3000, 10))[3].attempts == 1
    await inbox.uncount(first.id)
    await inbox.release_lease("a")
    assert (await inbox.begin("b", 3000, 10))[3].attempts == 1


async def test_the_state_version_changes_with_each_save_and_each_restart(inbox):
    _, _, started, _ = await inbox.begin("a", 3000, 1)
    saved = await inbox.bump_version()
    await inbox.subscribe(["work"])  # a relaunch
    _, _, restarted, _ = await inbox.begin("a", 3000, 1)  # (same token: the lease is still ours)
    assert len({started, saved, restarted}) == 3


async def test_a_stopped_agent_leaves_no_keys_and_a_relaunch_starts_from_a_fresh_version(bus, inbox):
    await bus.publish(text_message("someone", "work"))
    _, _, running, _ = await inbox.begin("a", 3000, 1)
    await inbox.release_lease("a")
    await inbox.unsubscribe(["work"])
    assert not await inbox.redis.keys(f"{inbox.prefix}*{inbox.agent_id}*")
    await inbox.subscribe(["work"])
    _, _, relaunched, _ = await inbox.begin("b", 3000, 1)
    assert relaunched not in (0, running)


async def test_an_ephemeral_publish_reaches_live_subscribers_and_no_inbox(bus, inbox, waker):
    from .conftest import Collector

    live = Collector("live")
    await bus.subscribe("work", live)
    token = text_message("someone", "work", "tok")
    await bus.publish(token, ephemeral=True)
    await live.wait_for(1)
    assert live.ids == [token.id]
    assert await inbox.size() == 0
    assert waker.woken == []
    assert await bus.get_messages("work") == []


def passing_work_on(message: Message) -> list[tuple[str, str, str, Message]]:
    """A stand-in: agent-1's whole handling of what comes on "work" is passing it on to "passed-on"."""
    if "work" not in message.topic_list:
        return []
    return [("work", "agent-1", "passed-on", message.model_copy(update={"topics": ["passed-on"]}))]


@pytest.fixture
async def standing_in(make_config, waker):
    bus = MessagingInterface(unique(), make_config(), delivery=DurableDelivery(waker), stand_in=passing_work_on)
    inbox = bus.delivery.inbox(await bus.get_backend(), bus.namespace, "agent-1")
    await inbox.subscribe(["work", "other"])
    yield bus, inbox
    await bus.shutdown()


async def test_an_idle_subscriber_has_its_copy_stored_for_it_instead_of_a_drain(standing_in, waker):
    bus, inbox = standing_in
    sent = await bus.publish(text_message("someone", "work", "one"))
    assert await inbox.size() == 0
    assert waker.woken == []  # no drain: the store did the work
    [copy] = await bus.get_messages("passed-on")
    assert (copy.id, copy.payload, copy.sender.id, copy.topic_published_to) == (sent.id, {"text": "one"},
                                                                                 "someone", "passed-on")
    await bus.publish(sent)  # stored again (a sender's handling run again): nothing doubles
    assert len(await bus.get_messages("passed-on")) == 1


async def test_a_subscriber_with_something_waiting_gets_the_message_itself_so_its_order_holds(standing_in, waker):
    bus, inbox = standing_in
    earlier = await bus.publish(text_message("someone", "other", "first"))
    later = await bus.publish(text_message("someone", "work", "second"))
    taken, _, _, batch = await inbox.begin("drainer", 3000, 10)
    assert taken
    assert ids(batch) == [earlier.id, later.id]
    assert await bus.get_messages("passed-on") == []
    assert waker.woken == [(bus.namespace, ["agent-1"])]
    assert await inbox.step("drainer", ids(batch), 10) is None  # handled: idle again
    after = await bus.publish(text_message("someone", "work", "third"))
    assert [m.id for m in await bus.get_messages("passed-on")] == [after.id]


async def _first_in_hand(bus, inbox):
    """A message for the subscriber, taken by a drain: its batch."""
    first = await bus.publish(text_message("someone", "other", "first"))
    taken, _, _, batch = await inbox.begin("drainer", 3000, 10)
    assert taken
    assert ids(batch) == [first.id]
    return batch


async def test_while_a_drain_is_under_way_the_subscriber_gets_the_message_itself(standing_in):
    bus, inbox = standing_in
    batch = await _first_in_hand(bus, inbox)
    # The first handled, its removal not yet stepped: the agent is still at work on it.
    second = await bus.publish(text_message("someone", "work", "second"))
    assert await bus.get_messages("passed-on") == []
    assert ids(await inbox.step("drainer", ids(batch), 10)) == [second.id]


async def test_a_drain_still_due_with_its_inbox_emptied_keeps_the_message_for_the_subscriber(standing_in):
    bus, inbox = standing_in
    batch = await _first_in_hand(bus, inbox)
    await inbox.step("drainer", ids(batch), 0)  # handled and removed, the drain not over (its slice ran out)
    assert await inbox.size() == 0
    second = await bus.publish(text_message("someone", "work", "second"))
    assert await bus.get_messages("passed-on") == []  # its drain is due: the message waits for it
    assert ids(await inbox.step("drainer", [], 10)) == [second.id]

async def test_a_copy_too_large_to_store_leaves_the_message_to_the_subscriber(standing_in):
    bus, inbox = standing_in
    message = text_message("someone", "work", "x" * 200)
    bus.max_message_bytes = len(message.model_copy(update={"topic_published_to": "work"}).to_json()) + 1
    await bus.publish(message)  # its copy, on a longer topic name, is over the limit
    assert await bus.get_messages("passed-on") == []
    assert await inbox.size() == 1
