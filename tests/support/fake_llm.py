"""A fake OpenAI-compatible server: real HTTP and SSE on a loopback port, scripted answers, recorded requests.

Each POST to /v1/chat/completions takes the next scripted answer (or the default one): a stream of text
deltas, then tool-call deltas if scripted, then a usage chunk then `[DONE]`, or an error status. Tests read
`requests` to see what was sent.
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

HOLD_MAX_SECONDS = 30.0


@dataclass
class Answer:
    deltas: list[str] = field(default_factory=lambda: ["Hello", " from", " the", " fake", " model."])
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0  # seconds between deltas (a slow stream)
    usage: dict[str, Any] | None = field(default_factory=lambda: {"prompt_tokens": 12, "completion_tokens": 5,
                                                                  "total_tokens": 17})
    model: str = "gpt-4o-mini-2024-07-18"
    hold_after: int | None = None  # after this many deltas, send nothing more until the client hangs up
    # Functions the model calls after its deltas: [{"id", "name", "arguments"}] (arguments: JSON text, sent in pieces).
    tool_calls: list[dict[str, str]] | None = None
    one_index: bool = False  # every tool call's deltas at index 0, as some OpenAI-compatible servers send them


class FakeLLM:
    def __init__(self) -> None:
        self.script: list[Answer] = []
        self.default = Answer()  # what a request gets when the script is spent
        # time.monotonic() when each request's first delta was written, by the request's last message: for
        # `make bench` (CLOCK_MONOTONIC is one clock for every process on the machine).
        self.first_delta_at: dict[str, float] = {}
        self.requests: list[dict[str, Any]] = []
        self.holding = threading.Event()  # a held stream's first deltas are sent; it waits (Answer.hold_after)
        self.hung_up = threading.Event()  # a client closed a held stream (Answer.hold_after)
        self._lock = threading.Lock()
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.0"  # the body ends when the connection closes: SSE without chunking

            def log_message(self, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                try:
                    self._answer()
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up (a timeout test): nothing to answer

            def _answer(self) -> None:
                length = int(self.headers.get("content-length") or 0)
                body = json.loads(self.rfile.read(length) or b"{}")
                with fake._lock:
                    fake.requests.append({"path": self.path, "body": body,
                                          "authorization": self.headers.get("authorization")})
                    answer = fake.script.pop(0) if fake.script else fake.default
                if not self.path.endswith("/chat/completions"):
                    return self._json(404, {"error": {"message": "not found"}})
                if answer.status != 200:
                    return self._json(answer.status, {"error": {"message": f"scripted {answer.status}",
                                                                "type": "fake"}}, answer.headers)
                self.send_response(200)
                self.send_header("content-type", "text/event-stream")
                self.end_headers()
                base = {"id": "chatcmpl-fake", "object": "chat.completion.chunk", "created": int(time.time()),
                        "model": answer.model}
                for index, delta in enumerate(answer.deltas):
                    if index == answer.hold_after:
                        return self._hold()
                    if index and answer.delay:
                        time.sleep(answer.delay)
                    self._event({**base, "choices": [{"index": 0, "delta": {"content": delta}, "finish_reason": None}]})
                    if index == 0:
                        asked = (body.get("messages") or [{}])[-1].get("content")
                        fake.first_delta_at[str(asked)] = time.monotonic()
                for position, call in enumerate(answer.tool_calls or []):
                    index = 0 if answer.one_index else position
                    self._event({**base, "choices": [{"index": 0, "finish_reason": None, "delta": {"tool_calls": [
                        {"index": index, "id": call["id"], "type": "function",
                         "function": {"name": call["name"], "arguments": ""}}]}}]})
                    half = len(call["arguments"]) // 2
                    for piece in (call["arguments"][:half], call["arguments"][half:]):
                        self._event({**base, "choices": [{"index": 0, "finish_reason": None, "delta": {"tool_calls": [
                            {"index": index, "function": {"arguments": piece}}]}}]})
                finish = "tool_calls" if answer.tool_calls else "stop"
                self._event({**base, "choices": [{"index": 0, "delta": {}, "finish_reason": finish}]})
                if answer.usage is not None and (body.get("stream_options") or {}).get("include_usage"):
                    self._event({**base, "choices": [], "usage": answer.usage})
                self.wfile.write(b"data: [DONE]\n\n")
                self.wfile.flush()

            def _hold(self) -> None:
                """Wait for the client to close the connection (a read sees its end), and note that it did."""
                fake.holding.set()
                self.connection.settimeout(HOLD_MAX_SECONDS)
                try:
                    while self.connection.recv(1024):
                        pass
                except TimeoutError:
                    return
                fake.hung_up.set()

            def _event(self, data: dict[str, Any]) -> None:
                self.wfile.write(b"data: " + json.dumps(data).encode() + b"\n\n")
                self.wfile.flush()

            def _json(self, status: int, data: dict[str, Any], headers: dict[str, str] | None = None) -> None:
                raw = json.dumps(data).encode()
                self.send_response(status)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(raw)))
                for name, value in (headers or {}).items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(raw)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.base_url = f"http://127.0.0.1:{self.port}/v1"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True, name="fake-llm")
        self._thread.start()

    def then(self, *answers: Answer) -> FakeLLM:
        with self._lock:
            self.script.extend(answers)
        return self

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
