"""Message ids: layout, ordering, uniqueness, derived ids, parsing (property-based where it fits)."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from unittest import mock

import pytest
from hypothesis import given
from hypothesis import strategies as st

from messaging import ids
from messaging.errors import InvalidMessageId
from messaging.ids import (
    EPOCH_MS,
    MAX_ID,
    MAX_TIMESTAMP,
    IdGenerator,
    Priority,
    decode_id,
    derive_id,
    encode_id,
    id_timestamp_ms,
    new_id,
    parse_id,
)

timestamps = st.integers(min_value=EPOCH_MS, max_value=EPOCH_MS + MAX_TIMESTAMP)
priorities = st.integers(min_value=0, max_value=7)
nodes = st.integers(min_value=0, max_value=1023)
sequences = st.integers(min_value=0, max_value=511)


def test_priority_values():
    assert [p.name for p in sorted(Priority)] == [
        "URGENT", "IMPORTANT", "HIGH", "ABOVE_NORMAL", "NORMAL", "LOW", "VERY_LOW", "LOWEST",
    ]
    assert Priority.NORMAL == 4


@given(timestamps, priorities, nodes, sequences)
def test_encode_decode_round_trip(ts, priority, node, seq):
    value = encode_id(ts, priority, node, seq)
    assert 0 <= value <= MAX_ID  # fits a PostgreSQL bigint
    assert decode_id(value) == (ts, priority, node, seq)
    assert id_timestamp_ms(value) == ts


@given(st.tuples(timestamps, priorities, nodes, sequences), st.tuples(timestamps, priorities, nodes, sequences))
def test_ids_sort_by_time_first(a, b):
    if a[0] < b[0]:
        assert encode_id(*a) < encode_id(*b)


def test_encode_rejects_out_of_range():
    for args in [(EPOCH_MS - 1, 4, 0, 0), (EPOCH_MS, 8, 0, 0), (EPOCH_MS, 4, 1024, 0), (EPOCH_MS, 4, 0, 512)]:
        with pytest.raises(ValueError):
            encode_id(*args)


def test_generator_ids_unique_and_increasing_within_a_thread():
    gen = IdGenerator(7)
    made = [gen.new(Priority.NORMAL) for _ in range(3000)]  # > 512 per ms forces waiting for the next ms
    assert made == sorted(made)
    assert len(set(made)) == len(made)
    assert {decode_id(i).node for i in made} == {7}
    assert {decode_id(i).priority for i in made} == {4}


def test_generator_is_thread_safe():
    gen = IdGenerator(3)
    out: list[list[int]] = [[] for _ in range(4)]

    def work(slot: list[int]) -> None:
        slot.extend(gen.new(i % 8) for i in range(2000))

    threads = [threading.Thread(target=work, args=(slot,)) for slot in out]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    everything = [i for slot in out for i in slot]
    assert len(set(everything)) == len(everything)
    # (timestamp, sequence) is never reused, whatever the priority
    pairs = {(decode_id(i).timestamp_ms, decode_id(i).sequence) for i in everything}
    assert len(pairs) == len(everything)


def test_generator_survives_clock_stepping_back():
    gen = IdGenerator(1)
    now = [EPOCH_MS + 1_000_000]
    with mock.patch.object(ids, "_now_ms", side_effect=lambda: now[0]):
        first = [gen.new() for _ in range(10)]
        now[0] -= 5_000  # the wall clock jumps back 5 s
        later = [gen.new() for _ in range(1500)]  # several ms worth of sequence: borrowed, no waiting
    everything = first + later
    assert everything == sorted(everything)
    assert len(set(everything)) == len(everything)
    assert decode_id(later[0]).timestamp_ms == EPOCH_MS + 1_000_000  # never moved back


def test_generator_rejects_derived_node_range():
    with pytest.raises(ValueError):
        IdGenerator(512)
    with pytest.raises(ValueError):
        IdGenerator(0).new(8)


@given(st.integers(min_value=0, max_value=MAX_ID >> 1), st.text(max_size=30), st.integers(0, 10_000), priorities)
def test_derive_id_is_deterministic_and_in_derived_range(parent, agent, index, priority):
    a = derive_id(parent, agent, index, priority)
    assert a == derive_id(parent, agent, index, priority)
    parts = decode_id(a)
    assert 512 <= parts.node <= 1023
    assert parts.priority == priority
    assert parts.timestamp_ms == id_timestamp_ms(parent) + 1
    assert 0 <= a <= MAX_ID


def test_derive_id_is_stable_across_processes():
    parent = encode_id(EPOCH_MS + 123_456, 4, 9, 17)
    here = derive_id(parent, "agent-7", 2, 3)
    code = f"from messaging.ids import derive_id; print(derive_id({parent}, 'agent-7', 2, 3))"
    env = {**os.environ, "PYTHONHASHSEED": "12345"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env)
    assert int(out.stdout) == here


def test_derive_id_varies_with_inputs():
    parent = new_id()
    derived = {derive_id(parent, agent, i, 4) for agent in ("a", "b", "c") for i in range(20)}
    assert len(derived) == 60


@given(st.integers(min_value=0, max_value=MAX_ID))
def test_parse_id_accepts_ints_and_decimal_strings(value):
    assert parse_id(value) == value
    assert parse_id(str(value)) == value


@pytest.mark.parametrize(
    "bad", [True, False, -1, MAX_ID + 1, str(MAX_ID + 1), "", "12a", "msg123", "-5", "1.5", 1.0, None, "9" * 5000, [1]]
)
def test_parse_id_rejects(bad):
    with pytest.raises(InvalidMessageId):
        parse_id(bad)


def test_new_id_uses_process_node_and_priority():
    made = new_id(Priority.URGENT)
    parts = decode_id(made)
    assert parts.priority == 0
    assert parts.node == ids.process_node_id()
    assert 0 <= parts.node < 512


def test_process_node_without_redis_is_random_and_stable(settings):
    settings.REDIS_URL = None
    with mock.patch.object(ids, "_process_node", None):
        node = ids.process_node_id()
        assert 0 <= node < 512
        assert ids.process_node_id() == node


def test_process_node_falls_back_when_redis_fails(settings, caplog):
    settings.REDIS_URL = "redis://127.0.0.1:1/0"  # nothing listens there
    with mock.patch.object(ids, "_process_node", None):
        node = ids.process_node_id()
    assert 0 <= node < 512
    assert "using a random node" in caplog.text


@pytest.mark.services
def test_process_node_from_redis_counter(settings, redis_url):
    import redis

    settings.REDIS_URL = redis_url
    client = redis.Redis.from_url(redis_url)
    try:
        before = int(client.get(ids.NODE_COUNTER_KEY) or 0)
        with mock.patch.object(ids, "_process_node", None):
            node = ids.process_node_id()
        after = int(client.get(ids.NODE_COUNTER_KEY))
    finally:
        client.close()
    assert after >= before + 1
    assert node == after % 512 or after > before + 1  # another process may have taken one meanwhile


def test_generator_recreated_after_fork():
    if not hasattr(os, "fork"):
        pytest.skip("no fork on this platform")
    parent_gen = ids._generator()
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # child: report whether it got a fresh generator
        try:
            fresh = ids._generator() is not parent_gen
            os.write(write, b"1" if fresh else b"0")
        finally:
            os._exit(0)
    os.close(write)
    answer = os.read(read, 1)
    os.close(read)
    os.waitpid(pid, 0)
    assert answer == b"1"
