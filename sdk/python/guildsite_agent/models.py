"""What handlers receive, and the exceptions of the public API."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .client import Agent


class CommandFailed(Exception):
    """Raise from a command handler to report a failure with an exit code and partial output."""

    def __init__(self, message: str, *, exit_code: int | None = None, output: str = ""):
        super().__init__(message)
        self.message, self.exit_code, self.output = message, exit_code, output


class AuthenticationRefused(Exception):
    """The server refused the key (close code 4401/4403, or HTTP 401/403 on the handshake)."""

    def __init__(self, code: int, reason: str = ""):
        super().__init__(f"authentication refused ({code}): {reason}")
        self.code, self.reason = code, reason


@dataclass
class IncomingMessage:
    guild_id: str
    id: Any  # opaque: may be an integer beyond 2**53
    format: str
    payload: dict
    sender: dict
    raw: dict
    delivery_id: str
    _agent: Agent = field(repr=False, compare=False)

    async def reply(self, payload: dict, format: str | None = None) -> None:
        await self._agent.publish(self.guild_id, payload, format=format or self.format,
                                  in_response_to=self.id, conversation_id=self.raw.get("conversation_id"))


@dataclass
class Command:
    id: str
    type: str
    content: str
    parameters: dict
    timeout_s: int | None
