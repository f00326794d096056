"""Message ids: 63-bit positive integers that carry creation time and priority.

Layout, high bits to low (63 bits, so every id fits a PostgreSQL `bigint`)::

    | 41 bits: ms since 2024-01-01T00:00:00Z | 3 bits: priority | 10 bits: node | 9 bits: sequence |

Ids therefore sort by creation time first; within one millisecond by priority, node and
sequence. Nodes 0-511 belong to generators (one per process, see `process_node_id`);
nodes 512-1023 are reserved for ids *derived* deterministically from a parent id
(`derive_id`), so a derived id can never collide with a generated one.

In JSON, ids travel as decimal strings (a JavaScript number loses precision above 2^53);
`parse_id` accepts both forms back.
"""

from __future__ import annotations

import functools
import hashlib
import logging
import os
import random
import threading
import time
from enum import IntEnum
from typing import NamedTuple

from messaging.errors import InvalidMessageId

logger = logging.getLogger(__name__)

EPOCH_MS = 1_704_067_200_000  # 2024-01-01T00:00:00Z in unix milliseconds

TIMESTAMP_BITS = 41
PRIORITY_BITS = 3
NODE_BITS = 10
SEQUENCE_BITS = 9

SEQUENCE_SHIFT = 0
NODE_SHIFT = SEQUENCE_BITS
PRIORITY_SHIFT = NODE_SHIFT + NODE_BITS
TIMESTAMP_SHIFT = PRIORITY_SHIFT + PRIORITY_BITS

MAX_TIMESTAMP = (1 << TIMESTAMP_BITS) - 1
MAX_PRIORITY = (1 << PRIORITY_BITS) - 1
MAX_NODE = (1 << NODE_BITS) - 1
MAX_SEQUENCE = (1 << SEQUENCE_BITS) - 1
MAX_ID = (1 << 63) - 1

GENERATOR_NODES = 512  # nodes 0..511 generate; 512..1023 are for derived ids
DERIVED_NODE_BASE = GENERATOR_NODES
_DERIVED_BITS = NODE_BITS - 1 + SEQUENCE_BITS  # a derived id's node and sequence below the "derived" bit
_DERIVED_MASK = (1 << _DERIVED_BITS) - 1
_DERIVED_SPREAD = 162_013  # odd, about 2^18 / golden ratio: neighbouring parents get distant bases

NODE_COUNTER_KEY = "guildsite:id-node"


class Priority(IntEnum):
    """Message priority: lower values are handled first."""

    URGENT = 0
    IMPORTANT = 1
    HIGH = 2
    ABOVE_NORMAL = 3
    NORMAL = 4
    LOW = 5
    VERY_LOW = 6
    LOWEST = 7


class IdParts(NamedTuple):
    timestamp_ms: int  # unix epoch milliseconds
    priority: int
    node: int
    sequence: int


def _check_priority(priority: int) -> int:
    if isinstance(priority, bool) or not isinstance(priority, int) or not 0 <= priority <= MAX_PRIORITY:
        raise ValueError(f"priority must be an integer 0-{MAX_PRIORITY}, got {priority!r}")
    return int(priority)


def encode_id(timestamp_ms: int, priority: int, node: int, sequence: int) -> int:
    """Pack parts into an id; `timestamp_ms` is unix epoch milliseconds."""
    offset = timestamp_ms - EPOCH_MS
    if not 0 <= offset <= MAX_TIMESTAMP:
        raise ValueError(f"timestamp {timestamp_ms} ms is outside the id range (2024-01-01 .. +{MAX_TIMESTAMP} ms)")
    _check_priority(priority)
    if not 0 <= node <= MAX_NODE:
        raise ValueError(f"node must be 0-{MAX_NODE}, got {node}")
    if not 0 <= sequence <= MAX_SEQUENCE:
        raise ValueError(f"sequence must be 0-{MAX_SEQUENCE}, got {sequence}")
    return (offset << TIMESTAMP_SHIFT) | (priority << PRIORITY_SHIFT) | (node << NODE_SHIFT) | sequence


def decode_id(message_id: int) -> IdParts:
    """The parts of an id: unix-ms timestamp, priority, node and sequence."""
    return IdParts(
        timestamp_ms=(message_id >> TIMESTAMP_SHIFT) + EPOCH_MS,
        priority=(message_id >> PRIORITY_SHIFT) & MAX_PRIORITY,
        node=(message_id >> NODE_SHIFT) & MAX_NODE,
        sequence=message_id & MAX_SEQUENCE,
    )


def id_timestamp_ms(message_id: int) -> int:
    """Unix epoch milliseconds at which the id was created."""
    return (message_id >> TIMESTAMP_SHIFT) + EPOCH_MS


def id_priority(message_id: int) -> int:
    return (message_id >> PRIORITY_SHIFT) & MAX_PRIORITY


def parse_id(value: int | str) -> int:
    """An id from an int or a decimal string; raises InvalidMessageId otherwise."""
    if type(value) is int:  # fast path; also excludes bool, a subclass of int
        if 0 <= value <= MAX_ID:
            return value
        raise InvalidMessageId(f"message id {value} is outside 0..2^63-1")
    if isinstance(value, str):
        text = value.strip()
        if not text.isascii() or not text.isdigit():
            raise InvalidMessageId(f"message id {value[:40]!r} is not a decimal integer")
        digits = text.lstrip("0") or "0"
        if len(digits) > 19 or int(digits) > MAX_ID:  # MAX_ID has 19 digits; never int() a huge string
            raise InvalidMessageId(f"message id {text[:40]} is above 2^63-1")
        return int(digits)
    if isinstance(value, int) and not isinstance(value, bool):  # an int subclass such as IntEnum
        return parse_id(int(value))
    raise InvalidMessageId(f"message id must be an integer or a decimal string, got {type(value).__name__}")


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


class IdGenerator:
    """Thread-safe generator of unique, time-ordered ids for one node (0-511).

    The logical clock never goes back: if the wall clock steps back, ids keep using the
    last timestamp (and borrow the next millisecond once its 512 sequence numbers are
    spent) until the wall clock catches up, so a timestamp+sequence pair is never reused.
    """

    def __init__(self, node: int):
        if not 0 <= node < GENERATOR_NODES:
            raise ValueError(f"generator node must be 0-{GENERATOR_NODES - 1}, got {node}")
        self.node = node
        self._lock = threading.Lock()
        self._last_ms = -1
        self._sequence = 0

    def new(self, priority: int = Priority.NORMAL) -> int:
        priority = _check_priority(priority)
        with self._lock:
            now = _now_ms()
            if now > self._last_ms:
                self._last_ms = now
                self._sequence = 0
            else:
                self._sequence += 1
                if self._sequence > MAX_SEQUENCE:
                    if now == self._last_ms:
                        # 512 ids in this millisecond: wait for the next one (at most ~1 ms).
                        while now <= self._last_ms:
                            time.sleep(0.0001)
                            now = _now_ms()
                        self._last_ms = now
                    else:
                        # The wall clock is behind the logical clock: move on without waiting.
                        self._last_ms += 1
                    self._sequence = 0
            offset = self._last_ms - EPOCH_MS
            if not 0 <= offset <= MAX_TIMESTAMP:
                raise RuntimeError(f"clock {self._last_ms} ms is outside the id range")
            node_and_seq = (self.node << NODE_SHIFT) | self._sequence
            return (offset << TIMESTAMP_SHIFT) | (priority << PRIORITY_SHIFT) | node_and_seq


@functools.lru_cache(maxsize=4096)  # few agents send: no sha256 on every send
def _agent_hash(agent_id: str, parent_kind: int) -> int:
    return int.from_bytes(hashlib.sha256(f"{agent_id}\x1f{parent_kind}".encode()).digest()[:4], "big")


def derive_id(parent_id: int, agent_id: str, index: int, priority: int) -> int:
    """A deterministic id for the `index`-th message `agent_id` sends while handling `parent_id`.

    Same inputs give the same id in every process (sha256, not `hash()`), so a handler
    re-run after a crash produces the same outgoing ids and receivers can de-duplicate.

    The id is at least 1 ms after its parent, on a node in 512-1023. One handling's ids form
    a run that increases with `index` (the low 18 bits count up from a base and carry into
    the milliseconds), so at one priority they sort in the order they were sent. The base is
    the parent's low 18 bits, spread by an odd multiplier (a bijection mod 2^18), plus a hash
    of the agent: generated ids of one millisecond differ in those bits whatever their
    priority, so the n-th ids one agent derives from them never repeat. Runs of different
    lengths meet only when two bases fall closer than the runs are long: about
    (n1 + n2) / 2^18 for runs of n1 and n2 ids from parents of the same millisecond, as for
    runs of different agents.
    """
    parent_id = parse_id(parent_id)
    priority = _check_priority(priority)
    if index < 0:
        raise ValueError(f"index must be >= 0, got {index}")
    # A derived parent's low bits are not unique among its millisecond's ids: its priority counts too.
    parent_kind = (parent_id >> _DERIVED_BITS) & 0xF if parent_id & (1 << _DERIVED_BITS) else 0
    base = ((parent_id & _DERIVED_MASK) * _DERIVED_SPREAD + _agent_hash(agent_id, parent_kind)) & _DERIVED_MASK
    position = (((parent_id >> TIMESTAMP_SHIFT) + 1) << _DERIVED_BITS) + base + index
    offset, low = position >> _DERIVED_BITS, position & _DERIVED_MASK
    if offset > MAX_TIMESTAMP:
        raise ValueError(f"cannot derive an id after {parent_id}: timestamp range exhausted")
    derived = (DERIVED_NODE_BASE << NODE_SHIFT) | low
    return (offset << TIMESTAMP_SHIFT) | (priority << PRIORITY_SHIFT) | derived


# --- the process-wide generator ------------------------------------------------------

_process_lock = threading.Lock()
_process_node: int | None = None
_process_generator: IdGenerator | None = None


def _forget_in_child() -> None:
    global _process_lock, _process_node, _process_generator
    _process_lock, _process_node, _process_generator = threading.Lock(), None, None


# A forked child allocates its own node (told at the fork: asking for the pid on every id is a system call).
os.register_at_fork(after_in_child=_forget_in_child)


def _allocate_node() -> int:
    from django.conf import settings  # imported late: ids are usable before Django is set up for tests

    url = getattr(settings, "REDIS_URL", None) if settings.configured else None
    if url:
        try:
            import redis

            client = redis.Redis.from_url(url, socket_timeout=1.0, socket_connect_timeout=1.0)
            try:
                return int(client.incr(NODE_COUNTER_KEY)) % GENERATOR_NODES
            finally:
                client.close()
        except Exception as exc:  # any failure: ids must still be generated
            logger.warning("id node allocation via Redis failed (%s); using a random node", exc)
    return random.randrange(GENERATOR_NODES)


def process_node_id() -> int:
    """This process's generator node (0-511), allocated once per process (again after fork).

    With `settings.REDIS_URL` set, nodes come from a shared Redis counter so processes on
    any machine get distinct nodes (modulo 512); otherwise, or if Redis fails, at random.
    """
    global _process_node
    current = _process_node
    if current is not None:
        return current
    with _process_lock:
        if _process_node is None:
            _process_node = _allocate_node()
            logger.debug("message id node %d allocated for pid %d", _process_node, os.getpid())
        return _process_node


def _generator() -> IdGenerator:
    global _process_generator
    current = _process_generator
    if current is not None:
        return current
    node = process_node_id()
    with _process_lock:
        if _process_generator is None:
            _process_generator = IdGenerator(node)
        return _process_generator


def new_id(priority: int = Priority.NORMAL) -> int:
    """A new unique id from this process's generator."""
    return _generator().new(priority)
