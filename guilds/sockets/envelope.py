"""Seed 004's v1 envelope: every frame of `/api/ws`, both ways, is {"v": 1, "id", "topic", "type", "ts", "data"}."""

from __future__ import annotations

import time
import uuid
from typing import Any

import orjson

VERSION = 1
SYSTEM_TOPIC = "system"  # what frames not about one topic (ping, error) name as theirs


def envelope(type_: str, topic: str, data: dict[str, Any], *, id: str | None = None, ts: int | None = None) -> bytes:
    """One frame, as JSON. `id` is unique per event (an event's frames on several sockets share it); `ts` is
    integer unix seconds, as seed 004 writes it."""
    return orjson.dumps({"v": VERSION, "id": id or uuid.uuid4().hex, "topic": topic, "type": type_,
                         "ts": int(time.time()) if ts is None else ts, "data": data})
