"""A real MCP server (the official SDK's MCPServer, over streamable HTTP under uvicorn) on a loopback port, with a
few tools for the LLM agent's tests; it records the Authorization header of every request and which tools ran."""

from __future__ import annotations

import asyncio
import secrets
import socket
import threading
import time
from typing import Any

import uvicorn
from mcp.server.mcpserver import MCPServer


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class ToolServer:
    """Tools: forecast(city), db_query(sql), db_drop(table), slow(seconds), fail(); see `calls`, `listings` and
    `authorizations`."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, dict[str, Any]]] = []
        self.authorizations: list[str | None] = []
        self.listings = 0  # tools/list requests
        self.running_at_once = 0
        self.most_at_once = 0
        server = MCPServer("test-tools")
        record = self._record

        @server.tool()
        def forecast(city: str) -> str:
            """Today's weather in a city."""
            record("forecast", {"city": city})
            return f"Sunny and 21 C in {city}"

        @server.tool()
        def db_query(sql: str) -> str:
            """Run a read-only query."""
            record("db_query", {"sql": sql})
            return "3 rows"

        @server.tool()
        def db_drop(table: str) -> str:
            """Drop a table (never allowed in the tests' specs)."""
            record("db_drop", {"table": table})
            return f"dropped {table}"

        @server.tool()
        async def slow(seconds: float) -> str:
            """Take a while, then answer."""
            record("slow", {"seconds": seconds})
            self.running_at_once += 1
            self.most_at_once = max(self.most_at_once, self.running_at_once)
            try:
                await asyncio.sleep(seconds)
            finally:
                self.running_at_once -= 1
            return f"slept {seconds}"

        @server.tool()
        def fail() -> str:
            """Always fails."""
            record("fail", {})
            raise RuntimeError("the tool broke")

        app = server.streamable_http_app()

        async def recording(scope: dict, receive: Any, send: Any) -> None:
            if scope["type"] != "http":
                return await app(scope, receive, send)
            if scope["path"] == self.path:  # served at the SDK's own path
                scope = {**scope, "path": "/mcp", "raw_path": b"/mcp"}
            headers = dict(scope.get("headers") or [])
            value = headers.get(b"authorization")
            self.authorizations.append(value.decode() if value is not None else None)

            async def reading() -> dict:
                event = await receive()
                if b'"tools/list"' in event.get("body", b""):
                    self.listings += 1
                return event
            await app(scope, reading, send)

        self.port = free_port()
        # A path of its own: a port a later test's server reuses must not meet a listing workers kept for this one.
        self.path = f"/mcp/{secrets.token_hex(6)}"
        self.url = f"http://127.0.0.1:{self.port}{self.path}"
        self._server = uvicorn.Server(uvicorn.Config(recording, host="127.0.0.1", port=self.port, log_level="warning",
                                                     lifespan="on"))
        self._thread = threading.Thread(target=self._server.run, daemon=True, name="mcp-test-server")
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self._server.started:
            if time.monotonic() > deadline or not self._thread.is_alive():
                raise RuntimeError("the test MCP server did not start")
            time.sleep(0.01)

    def _record(self, name: str, arguments: dict[str, Any]) -> None:
        self.calls.append((name, arguments))

    def close(self) -> None:
        self._server.should_exit = True
        self._thread.join(10)
