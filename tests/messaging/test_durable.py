"""Durable inboxes (the Celery engine's agents): what a drain may and may not do, against real Redis."""

from __future__ import annotations

import asyncio

import pytest

from messaging import durable

from .conftest import text_message, unique

pytestmark = pytest.mark.services


@pytest.fixture
def backend_name() -> str:
    return "redis"  # durable inboxes live in Redis only


@pytest.fixture
def woken(monkeypatch) -> list[tuple[str, list[str]]]:
    """Wake-ups reach this list, not an engine (the store script enqueues no task)."""
    calls: list[tuple[str, list[str]]] = []
    monkeypatch.setattr(durable, "_wake_handler", lambda namespace, agents: calls.append((namespace, agents)))
    monkeypatch.setattr(durable, "_task_template", None)
    return calls


@pytest.fixture
async def inbox_and_bus(make_bus, woken):
    bus = make_bus(unique())
    inbox = durable.Inbox(await bus.get_backend(), bus.namespace, "agent-1")
    await inbox.subscribe(["work"])
    return inbox, bus


async def test_a_new_message_wakes_an_idle_agent_once(inbox_and_bus, woken):
    inbox, bus = inbox_and_bus
    await bus.publish(text_message("someone", "work", "one"))
    await bus.publish(text_message("someone", "work", "two"))
    assert woken == [(bus.namespace, ["agent-1"])]  # the second finds a drain already due
    assert await inbox.size() == 2


async def test_the_last_step_ends_the_drain_so_the_next_message_wakes_the_agent_again(inbox_and_bus, woken):
    inbox, bus = inbox_and_bus
    first = await bus.publish(text_message("someone", "work", "one"))
    taken, _, _, batch = await inbox.begin("drainer-a", 3000, 10)
    assert taken
    assert [m.id for m in batch] == [first.id]
    assert await inbox.step("drainer-a", batch, 10) is None  # handled, nothing left: the drain is over
    assert await inbox.size() == 0
    assert (await inbox.begin("drainer-b", 3000, 10))[0]  # the lease was released with it
    await inbox.release_lease("drainer-b")
    await bus.publish(text_message("someone", "work", "two"))
    assert woken == [(bus.namespace, ["agent-1"])] * 2


async def test_a_drain_whose_lease_lapsed_removes_nothing(inbox_and_bus):
    inbox, bus = inbox_and_bus
    message = await bus.publish(text_message("someone", "work", "one"))
    taken, _, _, batch = await inbox.begin("stalled", 50, 10)
    assert taken
    await asyncio.sleep(0.1)  # the lease lapses, as for a drain stalled longer than it
    taken_over, _, _, again = await inbox.begin("successor", 3000, 10)
    assert taken_over
    assert [m.id for m in again] == [message.id]
    with pytest.raises(durable.LeaseLost):
        await inbox.step("stalled", batch, 10)
    assert await inbox.size() == 1  # still there for the successor
    assert await inbox.step("successor", again, 10) is None


async def test_a_second_drain_waits_for_the_lease(inbox_and_bus):
    inbox, bus = inbox_and_bus
    await bus.publish(text_message("someone", "work", "one"))
    assert (await inbox.begin("first", 3000, 10))[0]
    taken, left_ms, _, batch = await inbox.begin("second", 3000, 10)
    assert not taken
    assert batch == []
    assert 0 < left_ms <= 3000


async def test_the_state_version_changes_with_each_save_and_each_restart(inbox_and_bus):
    inbox, _ = inbox_and_bus
    _, _, started, _ = await inbox.begin("a", 3000, 1)
    saved = await inbox.bump_version()
    await inbox.subscribe(["work"])  # a relaunch
    _, _, restarted, _ = await inbox.begin("a", 3000, 1)  # (same token: the lease is still ours)
    assert len({started, saved, restarted}) == 3


async def test_a_stopped_agent_leaves_no_keys_and_a_relaunch_starts_from_a_fresh_version(inbox_and_bus):
    inbox, bus = inbox_and_bus
    await bus.publish(text_message("someone", "work"))
    _, _, running, _ = await inbox.begin("a", 3000, 1)
    await inbox.release_lease("a")
    await inbox.unsubscribe(["work"])
    assert not await inbox.redis.keys(f"{inbox.prefix}*{inbox.agent_id}*")
    await inbox.subscribe(["work"])
    _, _, relaunched, _ = await inbox.begin("b", 3000, 1)
    assert relaunched not in (0, running)
