"""The drain lane's listener on a real Redis: each drain pushed is run once, in the order pushed, and leaves
nothing held; a drain whose time slice ran out goes back on the lane; what a dead process of the same slot held is
drained again first. (tests/faults/test_worker_killed.py has the last with real workers and a real kill.)"""

from __future__ import annotations

import asyncio
import time
import uuid
from types import SimpleNamespace

import pytest

from guilds.engines.celery import lane

pytestmark = pytest.mark.services


class Drains:
    """Stands for the worker's drain task: records what it was asked, answers the outcomes it is given."""

    def __init__(self, *outcomes: SimpleNamespace) -> None:
        self.calls: list[tuple[str, str, bool]] = []
        self.outcomes = list(outcomes)

    async def __call__(self, guild_id: str, agent_id: str, redelivered: bool) -> SimpleNamespace:
        self.calls.append((guild_id, agent_id, redelivered))
        return self.outcomes.pop(0) if self.outcomes else SimpleNamespace(retry_in=None, more=False)


def listening(drains: Drains, check, *, held: list[str] = ()):
    """Run a listener with `drains` until `check(client, queue)` holds (10 s at most); what it saw."""
    from django.conf import settings
    from redis.asyncio import Redis

    queue = f"lane-test-{uuid.uuid4().hex[:8]}"

    async def scenario(push):
        client = Redis.from_url(settings.REDIS_URL)
        listener = lane.LaneListener(client, queue, "node@test", 0, drains)
        try:
            for item in held:
                await client.lpush(lane.held_key(queue, "node@test", 0), item)
            await push(client)
            task = asyncio.ensure_future(listener.run())
            deadline = time.monotonic() + 10
            while not await check(client, queue):
                assert time.monotonic() < deadline, f"not in time; drains asked: {drains.calls}"
                await asyncio.sleep(0.01)  # a poll interval, within the deadline
            task.cancel()
            return await client.llen(lane.lane_key(queue)), await client.llen(lane.held_key(queue, "node@test", 0))
        finally:
            await client.delete(lane.lane_key(queue), lane.held_key(queue, "node@test", 0))
            await client.aclose()

    return queue, scenario


def test_each_drain_pushed_runs_once_in_order_and_leaves_nothing_held():
    drains = Drains()

    async def push(client):
        for agent in ("a1", "a2", "a3"):
            await lane.push(client, lane.lane_key(queue), "g1", agent)

    async def done(client, queue):
        return len(drains.calls) == 3 and not await client.llen(lane.held_key(queue, "node@test", 0))

    queue, scenario = listening(drains, done)
    waiting, held = asyncio.run(scenario(push))
    assert drains.calls == [("g1", "a1", False), ("g1", "a2", False), ("g1", "a3", False)]
    assert (waiting, held) == (0, 0)


def test_a_drain_whose_time_slice_ran_out_goes_back_on_the_lane():
    drains = Drains(SimpleNamespace(retry_in=None, more=True))

    async def push(client):
        await lane.push(client, lane.lane_key(queue), "g1", "busy")

    async def done(client, queue):
        return len(drains.calls) == 2 and not await client.llen(lane.held_key(queue, "node@test", 0))

    queue, scenario = listening(drains, done)
    assert asyncio.run(scenario(push)) == (0, 0)
    assert drains.calls == [("g1", "busy", False), ("g1", "busy", False)]


def test_what_the_slots_previous_process_held_is_drained_again_first():
    drains = Drains()

    async def push(client):
        await lane.push(client, lane.lane_key(queue), "g1", "new")

    async def done(client, queue):
        return len(drains.calls) == 2 and not await client.llen(lane.held_key(queue, "node@test", 0))

    queue, scenario = listening(drains, done, held=['["g1", "interrupted"]'])
    assert asyncio.run(scenario(push)) == (0, 0)
    assert drains.calls == [("g1", "interrupted", True), ("g1", "new", False)]


@pytest.mark.parametrize(("given", "name"), [("prefork", "prefork"), ("solo", "solo"), ("threads", "threads")])
def test_a_workers_pool_is_named_the_same_given_by_name_or_by_class(given, name):
    """Only pools that say when each process running tasks starts (prefork, solo) listen from their processes;
    a mistaken name would make the worker's main process listen, and drain, too."""
    import celery.concurrency

    from guildsite.celery import _pool_name

    assert _pool_name(given) == name
    assert _pool_name(celery.concurrency.get_implementation(given)) in {name, name.rstrip("s")}


def test_a_process_going_away_hands_back_what_it_has_not_finished():
    """Celery's warm shutdown waits for its own tasks only: a drain still under way when the grace is over goes
    back on the lane, next in line, for another process (its lease keeps the two apart)."""
    from django.conf import settings
    from redis.asyncio import Redis

    queue = f"lane-test-{uuid.uuid4().hex[:8]}"
    started = asyncio.Event()

    async def endless(guild_id: str, agent_id: str, redelivered: bool):
        started.set()
        await asyncio.sleep(3600)

    async def scenario():
        client = Redis.from_url(settings.REDIS_URL)
        listener = lane.LaneListener(client, queue, "node@test", 0, endless)
        try:
            await lane.push(client, lane.lane_key(queue), "g1", "slow")
            reading = asyncio.ensure_future(listener.run())
            await asyncio.wait_for(started.wait(), 10)
            await listener.stop(grace=0.2)
            assert reading.cancelled() or reading.done()
            return (await client.lrange(lane.lane_key(queue), 0, -1),
                    await client.llen(lane.held_key(queue, "node@test", 0)))
        finally:
            await client.delete(lane.lane_key(queue), lane.held_key(queue, "node@test", 0))
            await client.aclose()

    waiting, held = asyncio.run(scenario())
    assert waiting == [b'["g1", "slow"]']
    assert held == 0
