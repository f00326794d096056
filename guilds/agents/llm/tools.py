"""MCP tools for LLM agents (seed 004's `mcp_servers`): each server's tools, through its allowlist, offered to
the model as functions; the model's calls made over MCP's streamable HTTP with the official SDK.

A server's listing is kept per process for GUILDSITE_MCP_TOOLS_TTL_SECONDS, by (URL, token). The allowlist is
applied twice: to what the model is offered, and to what it calls (a model may name a tool it was never
offered). A server that cannot be reached costs its own tools only; the run notes it.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import re
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Annotated, Any

from django.conf import settings
from pydantic import BaseModel, ConfigDict, Field, StringConstraints, ValidationInfo, field_validator

from guilds.agents.llm import guards, sdks

if TYPE_CHECKING:  # loaded by the first call to a server (guilds.agents.llm.sdks), not at start
    import mcp
    import mcp_types

_MCP_MODULES = ("mcp", "mcp.client.streamable_http", "mcp.shared._httpx_utils")

logger = logging.getLogger(__name__)

# The names a provider takes for a function (OpenAI's rule); a tool named otherwise is not offered.
FUNCTION_NAME = r"^[A-Za-z0-9_-]{1,64}$"
RESULT_MAX_CHARS = 32_000  # what one tool result may put in the model's context
ToolPattern = Annotated[str, StringConstraints(min_length=1, max_length=128)]


class McpServer(BaseModel):
    """One entry of an LLM agent's `mcp_servers`."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(pattern=r"^[A-Za-z0-9_.-]{1,64}$")
    url: str = Field(max_length=2000)
    auth_token: str | None = Field(None, max_length=140, description="${NAME} of an allowed environment variable.")
    allowed_tools: list[ToolPattern] | None = Field(
        None, max_length=200, description="Tool names, or prefixes ending in '*'; left out, every tool of the server.")

    @field_validator("url")
    @classmethod
    def _host_allowed(cls, value: str) -> str:
        return guards.check_mcp_url(value)

    @field_validator("auth_token")
    @classmethod
    def _token_is_a_reference_for_this_host(cls, value: str | None, info: ValidationInfo) -> str | None:
        url = info.data.get("url")  # checked first (declared first); absent when it was refused
        return guards.check_token_reference(value, url) if value and url else value

    def allows(self, tool_name: str) -> bool:
        if self.allowed_tools is None:
            return True
        return any(pattern == tool_name or (pattern.endswith("*") and tool_name.startswith(pattern[:-1]))
                   for pattern in self.allowed_tools)

    def token(self) -> str:
        return guards.token_of(self.auth_token, self.url) if self.auth_token else ""


@dataclass(frozen=True)
class Tool:
    server: McpServer
    name: str
    description: str
    input_schema: dict[str, Any]

    def as_function(self) -> dict[str, Any]:
        return {"type": "function", "function": {"name": self.name, "description": self.description[:1024],
                                                  "parameters": self.input_schema or {"type": "object"}}}


@dataclass
class ToolCall:
    """A call the model asked for, and how it went."""

    call_id: str
    name: str
    arguments: str  # JSON text, as the model wrote it
    server: str = ""
    output: str = ""
    ok: bool = False
    duration_ms: int = 0

    def record(self) -> dict[str, Any]:
        return {"id": self.call_id, "tool": self.name, "server": self.server, "ok": self.ok,
                "duration_ms": self.duration_ms, **({} if self.ok else {"error": self.output[:500]})}


@dataclass
class Toolbox:
    """The tools a run may use, by the name the model knows them by."""

    tools: dict[str, Tool] = field(default_factory=dict)
    unavailable: list[str] = field(default_factory=list)  # servers that could not be listed, and why

    def offered(self) -> list[dict[str, Any]]:
        return [tool.as_function() for tool in self.tools.values()]

    async def call(self, call: ToolCall) -> ToolCall:
        """Make one call; its output (or what went wrong, for the model to read) lands in `call`."""
        started = time.monotonic()
        tool = self.tools.get(call.name)
        try:
            if tool is None or not tool.server.allows(call.name):
                raise ToolRefused(f"'{call.name}' is not a tool this agent may use")
            call.server = tool.server.name
            if len(call.arguments.encode()) > settings.GUILDSITE_MCP_MAX_ARGUMENT_BYTES:
                raise ToolRefused(f"the arguments are over {settings.GUILDSITE_MCP_MAX_ARGUMENT_BYTES} bytes")
            try:
                arguments = json.loads(call.arguments or "{}")
            except json.JSONDecodeError as exc:
                raise ToolRefused(f"the arguments are not JSON: {exc}") from None
            if not isinstance(arguments, dict):
                raise ToolRefused("the arguments must be a JSON object")
            result = await _call(tool.server, call.name, arguments)
            call.output, call.ok = _text_of(result), not result.is_error
        except ToolRefused as exc:
            call.output = f"error: {exc}"
        except Exception as exc:  # the server's trouble: the model reads it and may answer without
            logger.warning("MCP tool call failed: %s", exc, extra={"tool": call.name, "server": call.server})
            call.output = f"error: the tool could not be called ({type(exc).__name__}: {exc})"
        call.duration_ms = int((time.monotonic() - started) * 1000)
        return call


class ToolRefused(Exception):
    pass


def _text_of(result: mcp_types.CallToolResult) -> str:
    parts = []
    for block in result.content:
        text = getattr(block, "text", None)
        parts.append(text if isinstance(text, str) else json.dumps(block.model_dump(mode="json", exclude_none=True)))
    if not parts and result.structured_content is not None:
        parts.append(json.dumps(result.structured_content))
    text = "\n".join(parts)
    return text if len(text) <= RESULT_MAX_CHARS else text[:RESULT_MAX_CHARS] + " …(cut)"


# --- talking to a server ------------------------------------------------------------------------


def _client(server: McpServer, http: Any) -> mcp.Client:
    from mcp import Client
    from mcp.client.streamable_http import streamable_http_client

    return Client(streamable_http_client(server.url, http_client=http),
                  read_timeout_seconds=settings.GUILDSITE_MCP_TIMEOUT_SECONDS)


def _http(server: McpServer) -> Any:
    guards.check_mcp_url(server.url)  # again at call time: settings may have changed since the spec was checked
    token = server.token()
    from mcp.shared._httpx_utils import create_mcp_http_client

    return create_mcp_http_client(headers={"Authorization": f"Bearer {token}"} if token else None)


async def _call(server: McpServer, name: str, arguments: dict[str, Any]) -> mcp_types.CallToolResult:
    await sdks.load(*_MCP_MODULES)
    async with asyncio.timeout(settings.GUILDSITE_MCP_TIMEOUT_SECONDS), _http(server) as http, \
            _client(server, http) as client:
        return await client.call_tool(name, arguments)


_listings: dict[tuple[str, str], tuple[float, list[mcp_types.Tool]]] = {}
_LISTINGS_MAX = 256


async def _listing(server: McpServer) -> list[mcp_types.Tool]:
    key = (server.url, hashlib.sha256(server.token().encode()).hexdigest())
    now = time.monotonic()
    kept = _listings.get(key)
    if kept is not None and kept[0] > now:
        return kept[1]
    await sdks.load(*_MCP_MODULES)
    tools: list[mcp_types.Tool] = []
    async with asyncio.timeout(settings.GUILDSITE_MCP_TIMEOUT_SECONDS), _http(server) as http, \
            _client(server, http) as client:
        cursor = None
        for _ in range(50):  # pages, bounded
            page = await client.list_tools(cursor=cursor)
            tools.extend(page.tools)
            cursor = page.next_cursor
            if not cursor:
                break
    if len(_listings) >= _LISTINGS_MAX:
        _listings.clear()
    _listings[key] = (now + settings.GUILDSITE_MCP_TOOLS_TTL_SECONDS, tools)
    return tools


async def toolbox(servers: list[McpServer]) -> Toolbox:
    """The allowed tools of every server that answers, listed concurrently."""
    box = Toolbox()
    if not servers:
        return box
    listings = await asyncio.gather(*(_listing(server) for server in servers), return_exceptions=True)
    for server, listing in zip(servers, listings, strict=True):
        if isinstance(listing, BaseException):
            if not isinstance(listing, Exception):
                raise listing
            logger.warning("MCP server %s unavailable: %s", server.name, listing)
            box.unavailable.append(f"MCP server '{server.name}' could not be reached: {type(listing).__name__}: "
                                   f"{listing}"[:500])
            continue
        for tool in listing:
            if not server.allows(tool.name) or tool.name in box.tools:
                continue  # outside the allowlist, or a name an earlier server gave already
            box.tools[tool.name] = Tool(server=server, name=tool.name, description=tool.description or "",
                                        input_schema=dict(tool.input_schema or {}))
    box.tools = {name: tool for name, tool in box.tools.items() if _fits(name)}
    return box


def _fits(name: str) -> bool:
    return re.fullmatch(FUNCTION_NAME, name) is not None
