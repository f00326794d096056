"""Typed errors of the messaging layer.

Every error raised by `messaging` on bad input or an unreachable backend is a
`MessagingError`, so callers at the edge (REST views, socket consumers, agents) can turn
them into protocol errors without catching bare exceptions.
"""

from __future__ import annotations

from typing import Any


class MessagingError(Exception):
    """Base class of every error the messaging layer raises on purpose."""


class InvalidMessage(MessagingError, ValueError):
    """A message (or message frame) failed validation.

    `errors` lists `(field path, reason)` pairs; `str()` gives a short readable summary.
    It is also a `ValueError` so generic input-handling code treats it as bad input.
    """

    def __init__(self, summary: str, errors: list[tuple[str, str]] | None = None):
        self.errors: list[tuple[str, str]] = errors or []
        super().__init__(summary)

    @classmethod
    def from_pydantic(cls, exc: Any, *, what: str = "message") -> InvalidMessage:
        """Summarise a pydantic ValidationError as `invalid message: field: reason; ...`."""
        errors: list[tuple[str, str]] = []
        for err in exc.errors(include_url=False, include_context=False, include_input=False):
            loc = ".".join(str(part) for part in err.get("loc", ())) or what
            reason = str(err.get("msg", "invalid")).removeprefix("Value error, ")
            errors.append((loc, reason))
        shown = "; ".join(f"{loc}: {reason}" for loc, reason in errors[:8])
        if len(errors) > 8:
            shown += f"; and {len(errors) - 8} more"
        return cls(f"invalid {what}: {shown}", errors)


class InvalidMessageId(MessagingError, ValueError):
    """A value is not a message id (a non-negative integer below 2^63, or its decimal string)."""


class PayloadTooLarge(MessagingError):
    """A message's JSON form is larger than the configured limit."""

    def __init__(self, size: int, limit: int):
        self.size = size
        self.limit = limit
        super().__init__(f"message is {size} bytes, over the limit of {limit} bytes")


class UnknownBackend(MessagingError):
    """A MessagingConfig names a backend module/class pair guildsite does not provide."""


class InvalidBackendConfig(MessagingError):
    """A known backend was given a `backend_config` it cannot use."""


class BackendUnavailable(MessagingError):
    """The backend cannot be reached (for Redis: the server at host:port does not answer)."""
