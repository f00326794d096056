"""Clients: the tracking client's guarantees and the wrappers."""

from __future__ import annotations

import asyncio
import time

import pytest

from messaging.clients import (
    FilteringClient,
    MessageTrackingClient,
    RecentIds,
    RetryingClient,
    SimpleClient,
    ThrottlingClient,
)
from messaging.ids import Priority

from .conftest import text_message


def test_recent_ids_is_bounded():
    recent = RecentIds(3)
    assert all(recent.add(i) for i in range(5))
    assert len(recent) == 3
    assert 4 in recent
    assert 1 not in recent
    assert not recent.add(4)


def test_recent_ids_forgets_what_it_has_held_past_the_horizon():
    now = [100.0]
    recent = RecentIds(1_000, horizon=60.0, clock=lambda: now[0])
    for message_id in range(500):  # a steady trickle, one id a second
        recent.add(message_id)
        now[0] += 1.0
    assert len(recent) <= 61  # not 500: a long-lived receiver does not fill to capacity
    assert not recent.add(499)  # a duplicate within the horizon is still caught
    assert 400 not in recent
    assert recent.add(400)
    for message_id in range(1_000, 3_000):  # a burst within one second: the capacity still bounds it
        recent.add(message_id)
    assert len(recent) == 1_000
    assert 2_999 in recent


async def test_tracking_client_never_handles_an_id_twice():
    handled = []

    async def handler(m):
        handled.append(m.id)

    client = MessageTrackingClient("c", "C", handler)
    m = text_message("s", "t")
    client.notify_new_message(m)
    client.notify_new_message(m.clone())
    await client.idle()
    client.notify_new_message(m.clone())  # after it was handled, too
    await client.idle()
    assert handled == [m.id]
    assert client.last_processed_id == m.id
    await client.close()


async def test_tracking_client_keeps_going_after_a_handler_error(caplog):
    handled = []

    async def handler(m):
        if m.payload["text"] == "boom":
            raise RuntimeError("boom")
        handled.append(m.payload["text"])

    client = MessageTrackingClient("c", "C", handler)
    for text in ("one", "boom", "two"):
        client.notify_new_message(text_message("s", "t", text))
    await client.idle()
    assert handled == ["one", "two"]
    assert "failed to handle message" in caplog.text
    await client.close()


async def test_tracking_client_handles_late_lower_ids_and_one_at_a_time():
    running = 0
    most = 0
    order = []

    async def handler(m):
        nonlocal running, most
        running += 1
        most = max(most, running)
        await asyncio.sleep(0)
        order.append(m.payload["text"])
        running -= 1

    early = text_message("s", "t", "early")  # smaller id, arrives last
    late = text_message("s", "t", "late")
    client = MessageTrackingClient("c", "C", handler)
    client.notify_new_message(late)
    await client.idle()
    client.notify_new_message(early)
    await client.idle()
    assert order == ["late", "early"]
    assert most == 1
    assert client.last_processed_id == early.id
    await client.close()


async def test_tracking_client_orders_what_is_waiting():
    order = []

    async def handler(m):
        order.append(m.payload["text"])

    client = MessageTrackingClient("c", "C", handler)
    # All arrive before the drain task first runs.
    client.notify_new_message(text_message("s", "t", "lowest", priority=Priority.LOWEST))
    client.notify_new_message(text_message("s", "t", "normal"))
    client.notify_new_message(text_message("s", "t", "urgent", priority=Priority.URGENT))
    await client.idle()
    assert order == ["urgent", "normal", "lowest"]
    await client.close()


async def test_closed_tracking_client_drops_new_messages():
    client = MessageTrackingClient("c", "C", lambda m: asyncio.sleep(0))
    await client.close()
    client.notify_new_message(text_message("s", "t"))
    assert client.waiting == 0


async def test_filtering_client():
    got = []
    client = FilteringClient(SimpleClient("c", "C", got.append), lambda m: m.format == "text")
    assert (client.id, client.name) == ("c", "C")
    client.notify_new_message(text_message("s", "t", format="text"))
    client.notify_new_message(text_message("s", "t", format="other"))
    assert [m.format for m in got] == ["text"]


async def test_throttling_client_paces_delivery_in_order():
    got: list[tuple[float, str]] = []
    inner = SimpleClient("c", "C", lambda m: got.append((time.monotonic(), m.payload["text"])))
    client = ThrottlingClient(inner, per_second=50)  # one every 20 ms
    start = time.monotonic()
    for i in range(4):
        client.notify_new_message(text_message("s", "t", str(i)))
    await asyncio.wait_for(client.idle(), timeout=5)
    assert [text for _, text in got] == ["0", "1", "2", "3"]
    assert got[-1][0] - start >= 0.055  # three gaps of 20 ms (with a little slack for timers)
    await client.close()
    with pytest.raises(ValueError):
        ThrottlingClient(inner, per_second=0)


async def test_retrying_client_retries_then_succeeds():
    attempts = []

    async def flaky(m):
        attempts.append(m.id)
        if len(attempts) < 3:
            raise ConnectionError("try again")

    tracking = MessageTrackingClient("c", "C", flaky)
    client = RetryingClient(tracking, attempts=3, backoff_seconds=0.001)
    m = text_message("s", "t")
    client.notify_new_message(m)
    await client.idle()
    assert attempts == [m.id] * 3
    assert client.retries == 2
    assert client.last_processed_id == m.id
    await client.close()


async def test_retrying_client_gives_up_after_attempts(caplog):
    calls = []

    async def broken(m):
        calls.append(m.id)
        raise ValueError("always")

    client = RetryingClient(MessageTrackingClient("c", "C", broken), attempts=2, backoff_seconds=0.001)
    client.notify_new_message(text_message("s", "t"))
    client.notify_new_message(text_message("s", "t"))
    await client.idle()
    assert len(calls) == 4
    assert "failed to handle message" in caplog.text
    await client.close()
    with pytest.raises(TypeError):
        RetryingClient(SimpleClient("x", "X", print), attempts=2)  # type: ignore[arg-type]


async def test_closing_a_client_from_a_task_that_is_cancelled_meanwhile_leaves_that_task_cancelled():
    """A guild's shutdown cancels its manager while the manager closes another agent's client; the manager
    must stop there, not run on (the shutdown waited on it for ever)."""
    handling, cleaning_up, finish_clean_up = asyncio.Event(), asyncio.Event(), asyncio.Event()

    async def handler(message):
        handling.set()
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            cleaning_up.set()
            await finish_clean_up.wait()  # a clean-up that takes a moment
            raise

    client = MessageTrackingClient("agent", "Agent", handler)
    client.notify_new_message(text_message("s", "t"))
    await handling.wait()
    closer = asyncio.ensure_future(client.close())
    await cleaning_up.wait()  # the closer is waiting for the client's task to end
    closer.cancel()
    finish_clean_up.set()
    with pytest.raises(asyncio.CancelledError):
        await closer
    assert closer.cancelled()


async def busy_client() -> MessageTrackingClient:
    """A client whose handler is busy with a message until cancelled."""
    handling = asyncio.Event()

    async def handler(message):
        handling.set()
        await asyncio.Event().wait()

    client = MessageTrackingClient("agent", "Agent", handler)
    client.notify_new_message(text_message("s", "t"))
    await handling.wait()
    return client


async def test_closing_a_client_absorbs_only_its_own_tasks_cancel():
    client = await busy_client()
    await client.close()  # returns: the cancel was the client's task's, not ours
    assert client.waiting == 0


async def test_a_task_that_closes_a_client_while_handling_its_own_cancel_finishes_that_clean_up():
    waiting, closed = asyncio.Event(), asyncio.Event()
    client = await busy_client()

    async def stopping_agent():
        try:
            waiting.set()
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            await client.close()  # the clean-up of a cancelled task: not cut short by that same cancel
            closed.set()
            raise

    agent = asyncio.ensure_future(stopping_agent())
    await waiting.wait()
    agent.cancel()
    with pytest.raises(asyncio.CancelledError):
        await agent
    assert closed.is_set()


async def test_a_client_stops_even_when_a_handler_loses_the_cancel():
    handling = asyncio.Event()

    async def handler(message):
        handling.set()
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            pass  # as a library below can, when a cancel lands just as what it awaited completes

    client = MessageTrackingClient("agent", "Agent", handler)
    client.notify_new_message(text_message("s", "t"))
    client.notify_new_message(text_message("s", "t", "second"))
    await handling.wait()
    async with asyncio.timeout(10):  # before, close() waited for ever: a guild's shutdown hung on it
        await client.close()
    assert client.handled == 1


async def test_a_closer_cancelled_while_it_waits_stops_even_when_the_task_loses_that_cancel():
    from messaging.tasks import cancel_and_wait

    started, first_cancel, release = asyncio.Event(), asyncio.Event(), asyncio.Event()

    async def loses_cancels():
        try:
            started.set()
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            first_cancel.set()
        while not release.is_set():  # a clean-up that loses the closer's cancel, handed on to it, and returns
            try:
                await release.wait()
            except asyncio.CancelledError:
                pass

    task = asyncio.ensure_future(loses_cancels())
    await started.wait()
    closer = asyncio.ensure_future(cancel_and_wait(task))
    await first_cancel.wait()  # the closer has cancelled the task and waits for it
    closer.cancel()  # handed on to the task at once (the closer waits on it), which loses it
    release.set()
    with pytest.raises(asyncio.CancelledError):
        await closer
    assert task.done()
    assert not task.cancelled()
