"""Writing an agent: subclass `Agent`, mark handlers with `@handles(format, ...)`.

A handler takes the agent and a `HandlerContext` (the message, `send`, `reply`,
`send_error`, `forward`, and the agent's and guild's state). Handlers may be plain
functions or coroutines; the engine runs one message at a time per agent.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, ClassVar

from pydantic import BaseModel, ConfigDict, ValidationError

if TYPE_CHECKING:
    from guilds.runtime.context import HandlerContext

ANY_FORMAT = "*"


class PropertiesError(ValueError):
    """A spec's properties do not fit the agent class; `fields` maps each property path to its problems."""

    def __init__(self, message: str, fields: dict[str, list[str]]) -> None:
        super().__init__(message)
        self.fields = fields


class NoProperties(BaseModel):
    model_config = ConfigDict(extra="forbid")


def handles(*formats: str, essential: bool = False) -> Callable:
    """Mark a method as the handler of messages in `formats` (`ANY_FORMAT` for all).

    `essential` handlers also run for messages on the guild's status/heartbeat topics,
    which ordinary handlers never see.
    """
    if not formats:
        raise TypeError("@handles needs at least one message format")

    def mark(method: Callable) -> Callable:
        method._handles_formats = formats  # type: ignore[attr-defined]
        method._handles_essential = essential  # type: ignore[attr-defined]
        return method

    return mark


class Agent:
    """Base class of every agent. Subclasses declare handlers and, optionally, `Properties`."""

    # Agents with settings declare them as a pydantic model; the spec's `properties` are checked against it.
    Properties: ClassVar[type[BaseModel]] = NoProperties
    # Shown in the catalog and the participants list.
    kind: ClassVar[str] = "bot"

    _handlers: ClassVar[dict[str, list[tuple[str, bool]]]] = {}

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        table: dict[str, list[tuple[str, bool]]] = {}
        for klass in reversed(cls.__mro__):
            for attr, value in vars(klass).items():
                formats = getattr(value, "_handles_formats", None)
                if formats:
                    for fmt in formats:
                        entries = [e for e in table.get(fmt, []) if e[0] != attr]
                        entries.append((attr, value._handles_essential))
                        table[fmt] = entries
        cls._handlers = table

    def __init__(self, *, agent_id: str, name: str, guild_id: str, properties: BaseModel, spec: Any) -> None:
        self.id = agent_id
        self.name = name
        self.guild_id = guild_id
        self.properties = properties
        self.spec = spec
        self.host: Any = None  # the AgentHost running this agent, set when it starts

    @classmethod
    def validate_properties(cls, properties: dict[str, Any]) -> BaseModel:
        try:
            return cls.Properties.model_validate(properties or {})
        except ValidationError as exc:
            fields: dict[str, list[str]] = {}
            for e in exc.errors(include_url=False):
                fields.setdefault(".".join(str(p) for p in e["loc"]), []).append(e["msg"].removeprefix("Value error, "))
            problems = "; ".join(f"{name or 'properties'}: {msg}" for name, msgs in fields.items() for msg in msgs)
            raise PropertiesError(f"properties do not fit {cls.__name__}: {problems}", fields) from None

    @classmethod
    def handlers_for(cls, message_format: str, *, essential_topic: bool) -> list[str]:
        """Names of the methods that handle `message_format`, in declaration order."""
        names: list[str] = []
        for fmt in (message_format, ANY_FORMAT):
            for attr, essential in cls._handlers.get(fmt, ()):
                if (essential or not essential_topic) and attr not in names:
                    names.append(attr)
        return names

    @classmethod
    def describe(cls) -> dict[str, Any]:
        """What the catalog shows about this class."""
        return {
            "agent_name": cls.__name__,
            "description": (cls.__doc__ or "").strip(),
            "properties_schema": cls.Properties.model_json_schema(),
            "message_handlers": {
                fmt: [attr for attr, _ in entries] for fmt, entries in sorted(cls._handlers.items())
            },
        }

    def extra_topics(self) -> list[str]:
        """Topics this class always listens to, beyond its spec's (system agents and proxies)."""
        return []

    def catch_up_topics(self) -> list[str]:
        """Topics whose messages stored before the agent started are handled when it starts."""
        return []

    # Asked for a heartbeat every interval. A user proxy is not: it is up while the engine runs it
    # (guilds.runtime.health), so a guild of N users does not pay N heartbeats an interval.
    answers_health_checks: ClassVar[bool] = True

    # A diagnostic agent (ProbeAgent) may be named in specs only where settings allow it.
    diagnostic: ClassVar[bool] = False

    # Keep the position reached on the catch-up topics in the agent's state (a write per message on
    # them), so a relaunch resumes exactly there. For rare, important topics only.
    keeps_catch_up_cursor: ClassVar[bool] = False

    # Keeps a thread per conversation (GET /api/threads): the chat page shows its conversations.
    keeps_threads: ClassVar[bool] = False

    # Records its handlings as runs itself (an LLM agent, with tokens and cost); otherwise its host records the
    # handling of a message a trigger sent (guilds.runtime.runs).
    records_runs: ClassVar[bool] = False

    async def health(self) -> tuple[str, str]:
        """What its heartbeat says: ("ok" or "warning", why). An agent that answers is well unless it knows
        better (an external agent whose process is away)."""
        return "ok", ""

    def export_memory(self) -> dict[str, Any] | None:
        """In-memory fields to keep between messages on engines that rebuild the agent (None: nothing)."""
        return None

    def import_memory(self, memory: dict[str, Any] | None) -> None:
        """Restore what export_memory gave."""

    # Life-cycle hooks, for agents that need them.
    async def on_start(self, ctx: HandlerContext) -> None:
        """Called once the agent is subscribed, before its first message."""

    async def on_stop(self) -> None:
        """Called when the agent is shut down."""
