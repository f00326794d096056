"""A real client of `/api/ws` (websockets' sync client): frames are read on a thread of their own, each ping
answered with a pong (unless `answer_pings` is off), so a test that is busy elsewhere is not closed 4408."""

from __future__ import annotations

import json
import queue
import threading
import time
import uuid
from collections.abc import Callable
from typing import Any

from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect


class LiveClient:
    def __init__(self, url: str, *, answer_pings: bool = True) -> None:
        self.socket = connect(url, open_timeout=10, max_size=None).__enter__()
        self.answer_pings = answer_pings
        self.frames: list[dict[str, Any]] = []  # every frame read so far, in order
        self._incoming: queue.Queue[dict[str, Any] | None] = queue.Queue()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        try:
            for raw in self.socket:
                frame = json.loads(raw)
                if frame.get("type") == "ping" and self.answer_pings:
                    self.send("pong")
                self._incoming.put(frame)
        except ConnectionClosed:
            pass
        finally:
            self._incoming.put(None)

    def __enter__(self) -> LiveClient:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.socket.__exit__(*exc)

    def send(self, type_: str, data: dict[str, Any] | None = None, *, id: str | None = None) -> str:
        id = id or uuid.uuid4().hex
        self.socket.send(json.dumps({"v": 1, "id": id, "topic": "system", "type": type_, "ts": int(time.time()),
                                     "data": data or {}}))
        return id

    def until(self, predicate: Callable[[dict[str, Any]], bool], *, timeout: float = 15,
              what: str = "a frame") -> dict[str, Any]:
        """The first frame, read before or arriving within `timeout`, that `predicate` accepts."""
        for frame in self.frames:
            if predicate(frame):
                return frame
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"timed out waiting for {what}; got {[(f['type'], f['topic']) for f in self.frames]}")
            try:
                frame = self._incoming.get(timeout=left)
            except queue.Empty:
                continue
            if frame is None:
                self._incoming.put(None)  # closed for every later wait too
                raise AssertionError(f"closed ({self.socket.close_code}) while waiting for {what}; "
                                     f"got {[(f['type'], f['topic']) for f in self.frames]}")
            self.frames.append(frame)
            if predicate(frame):
                return frame

    def subscribe(self, *topics: str, type_: str = "subscribe") -> dict[str, dict[str, Any]]:
        """Each topic's answer (subscribe_ack or subscribe_error, unsubscribe_ack), by topic."""
        request = self.send(type_, {"topics": list(topics)})
        answers = {}
        for topic in topics:
            answers[topic] = self.until(lambda f, t=topic: f["data"].get("request_id") == request
                                        and f["data"].get("topic") == t, what=f"the answer for {topic}")
        return answers

    def unsubscribe(self, *topics: str) -> dict[str, dict[str, Any]]:
        return self.subscribe(*topics, type_="unsubscribe")

    def closed(self, timeout: float = 15) -> int | None:
        """The close code, once the server has closed the socket (within `timeout`)."""
        self._reader.join(timeout)
        assert not self._reader.is_alive(), f"still open after {timeout} s"
        return self.socket.close_code

    def event(self, type_: str, topic: str, match: Callable[[dict[str, Any]], bool] = lambda data: True, *,
              timeout: float = 15) -> dict[str, Any]:
        return self.until(lambda f: f["type"] == type_ and f["topic"] == topic and match(f["data"]), timeout=timeout,
                          what=f"{type_} on {topic}")
