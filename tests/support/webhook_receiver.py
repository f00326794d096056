"""A webhook receiver on a loopback port, in a thread: it records every request (headers and raw body) and answers
with the statuses it is told to, in turn (then 200), or holds a request until released."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes


@dataclass
class WebhookReceiver:
    statuses: list[int] = field(default_factory=list)  # answered in turn; 200 once they run out
    hold: threading.Event | None = None  # while set to an unset event, each request waits for it
    received: list[Received] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._lock = threading.Condition()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                with receiver._lock:
                    receiver.received.append(Received(self.path, {k.lower(): v for k, v in self.headers.items()},
                                                      body))
                    status = receiver.statuses.pop(0) if receiver.statuses else 200
                    receiver._lock.notify_all()
                if receiver.hold is not None:
                    receiver.hold.wait(30)
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}/hook"

    def wait_for(self, count: int, timeout: float = 15.0) -> list[Received]:
        """The first `count` requests, once they have come (AssertionError after `timeout`)."""
        deadline = time.monotonic() + timeout
        with self._lock:
            while len(self.received) < count:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"{len(self.received)} webhook request(s) within {timeout} s, not {count}")
                self._lock.wait(left)
            return list(self.received[:count])

    def close(self) -> None:
        if self.hold is not None:
            self.hold.set()
        self._server.shutdown()
        self._server.server_close()
