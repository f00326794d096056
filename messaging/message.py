"""The Message model (seed 002), its parts, and the routing slip types.

Input is lenient, output is exact:

* ids (`id`, `in_response_to`, `thread[*]`, `forward_header.origin_message_id`,
  `message_history[*].origin/result`) are accepted as integers or decimal strings and
  written to JSON as **decimal strings** (JavaScript loses precision above 2^53);
  `model_dump(mode="python")` keeps them as ints.
* `priority` comes from the id (it must agree if given); `timestamp` defaults to the id's
  time and is accepted as ms, seconds (any number below 1e11) or an ISO-8601 string, and
  always written as integer milliseconds.
* `conversation_id` is a string (an integer is accepted; `conversationId` too).
* `thread` defaults to `[id]`.

Invalid input raises `InvalidMessage` with a short list of the bad fields, never a raw
pydantic error. Build messages with `Message.create(...)`, read them with
`Message.from_json` / `Message.from_wire`.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime
from typing import Annotated, Any

from pydantic import (
    AliasChoices,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    StringConstraints,
    ValidationError,
    model_validator,
)

from messaging.errors import InvalidMessage
from messaging.ids import Priority, id_priority, id_timestamp_ms, new_id, parse_id

RAW_JSON_FORMAT = "generic_json"


def _id_in(value: Any) -> int:
    # InvalidMessageId is a ValueError, so pydantic reports it against the field.
    return parse_id(value)


MessageId = Annotated[int, BeforeValidator(_id_in), PlainSerializer(str, return_type=str, when_used="json")]
NonEmptyStr = Annotated[str, Field(min_length=1)]


def _timestamp_in(value: Any) -> Any:
    """int/float ms, float seconds (< 1e11), numeric or ISO-8601 string -> int ms."""
    if value is None:
        return None
    if isinstance(value, bool):
        raise ValueError("timestamp must be a number or an ISO-8601 string")
    if isinstance(value, int | float):
        number = float(value)
    elif isinstance(value, str):
        text = value.strip()
        try:
            number = float(text)
        except ValueError:
            try:
                parsed = datetime.fromisoformat(text)
            except ValueError:
                raise ValueError("timestamp must be milliseconds, seconds or an ISO-8601 string") from None
            if parsed.tzinfo is None:
                parsed = parsed.replace(tzinfo=UTC)  # a naive client time is taken as UTC
            return int(parsed.timestamp() * 1000)
    else:
        raise ValueError("timestamp must be a number or an ISO-8601 string")
    if not math.isfinite(number) or number < 0:
        raise ValueError("timestamp must be a non-negative finite number")
    if number < 1e11:  # seconds (1e11 ms is 1973; 1e11 s is the year 5138)
        number *= 1000
    return int(number)


def _topics_in(value: Any) -> Any:
    if isinstance(value, str):
        if value:
            return value
    elif isinstance(value, list | tuple) and value and all(isinstance(t, str) and t for t in value):
        return list(value)
    raise ValueError("topics must be a non-empty string or a non-empty list of non-empty strings")


def _conversation_in(value: Any) -> Any:
    if isinstance(value, bool):
        raise ValueError("conversation_id must be a string or an integer")
    if isinstance(value, int):
        return str(value)
    return value


# Parts passed in as instances are copied (revalidated), so a message never shares a
# mutable part (a sender tag, a guild's routing slip) with whoever built it.
_PART_CONFIG = ConfigDict(extra="forbid", revalidate_instances="always")


class AgentTag(BaseModel):
    """Who: an agent (or user) by id and/or name."""

    model_config = _PART_CONFIG

    id: str | None = None
    name: str | None = None

    def matches(self, other: AgentTag | None) -> bool:
        """Partial match: every field set on this tag equals the other's (an empty tag matches all)."""
        if other is None:
            return False
        if self.id is not None and self.id != other.id:
            return False
        return not (self.name is not None and self.name != other.name)


class ForwardHeader(BaseModel):
    model_config = _PART_CONFIG

    origin_message_id: MessageId
    on_behalf_of: AgentTag


class ProcessEntry(BaseModel):
    """One hop in a message's history: `agent` handled `origin` and produced `result`."""

    model_config = _PART_CONFIG

    agent: AgentTag
    origin: MessageId
    result: MessageId
    processor: str
    from_topic: str | None = None
    to_topics: list[str] = Field(default_factory=list)
    reason: list[str] | None = None


class OriginFilter(BaseModel):
    model_config = _PART_CONFIG

    origin_sender: AgentTag | None = None
    origin_topic: str | None = None
    origin_message_format: str | None = None


class RoutingDestination(BaseModel):
    model_config = _PART_CONFIG

    topics: str | list[str] | None = None
    recipient_list: list[AgentTag] = Field(default_factory=list)
    priority: Annotated[int, Field(ge=0, le=7)] | None = None

    @model_validator(mode="before")
    @classmethod
    def _singular_topic(cls, data: Any) -> Any:
        # The original system's own tests write `destination.topic`; accept it as `topics`.
        if isinstance(data, dict) and "topic" in data:
            data = dict(data)
            topic = data.pop("topic")
            if data.get("topics") is None:
                data["topics"] = topic
            elif data["topics"] != topic:
                raise ValueError("give either 'topics' or 'topic', not both")
        return data

    @property
    def topic_list(self) -> list[str]:
        if self.topics is None:
            return []
        return [self.topics] if isinstance(self.topics, str) else list(self.topics)


class RoutingRule(BaseModel):
    """One step of a routing slip. The runtime does the matching; this is the data."""

    model_config = _PART_CONFIG

    agent: AgentTag | None = None
    agent_type: str | None = None
    method_name: str | None = None
    origin_filter: OriginFilter | None = None
    message_format: str | None = None
    destination: RoutingDestination | None = None
    mark_forwarded: bool = False
    route_times: int = 1  # uses left; negative = unlimited; 0 = spent
    reason: str | None = None
    transformer: dict[str, Any] | None = None
    # Accepted as written from the original system's blueprints; carried, not interpreted here.
    agent_state_update: dict[str, Any] | None = None
    guild_state_update: dict[str, Any] | None = None
    process_status: str | None = None

    @model_validator(mode="after")
    def _agent_or_type(self) -> RoutingRule:
        if self.agent is None and not self.agent_type:
            raise ValueError("a routing rule needs 'agent' or 'agent_type'")
        return self

    def is_exhausted(self) -> bool:
        return self.route_times == 0

    def is_unlimited(self) -> bool:
        return self.route_times < 0

    def used_once(self) -> RoutingRule:
        """This rule after one use (unlimited rules are unchanged)."""
        if self.route_times <= 0:
            return self
        return self.model_copy(update={"route_times": self.route_times - 1})


class RoutingSlip(BaseModel):
    model_config = _PART_CONFIG

    steps: list[RoutingRule] = Field(default_factory=list)

    def active_steps(self) -> list[RoutingRule]:
        return [step for step in self.steps if not step.is_exhausted()]


class Message(BaseModel):
    """A message on the bus (seed 002's schema, plus `client_message_id`)."""

    model_config = ConfigDict(extra="forbid")

    id: MessageId
    sender: AgentTag
    topics: Annotated[str | list[str], BeforeValidator(_topics_in)]
    payload: dict[str, Any]
    format: NonEmptyStr = RAW_JSON_FORMAT
    priority: Annotated[int, Field(ge=0, le=7)] | None = None  # filled from the id
    timestamp: Annotated[int | None, BeforeValidator(_timestamp_in)] = None  # unix ms; filled from the id
    thread: list[MessageId] = Field(default_factory=list)  # filled with [id] when empty
    recipient_list: list[AgentTag] = Field(default_factory=list)
    in_response_to: MessageId | None = None
    conversation_id: Annotated[str | None, BeforeValidator(_conversation_in)] = Field(
        default=None, validation_alias=AliasChoices("conversation_id", "conversationId")
    )
    forward_header: ForwardHeader | None = None
    routing_slip: RoutingSlip | None = None
    message_history: list[ProcessEntry] = Field(default_factory=list)
    ttl: Annotated[int, Field(ge=0)] | None = None
    is_error_message: bool = False
    traceparent: str | None = None
    session_state: dict[str, Any] | None = None
    topic_published_to: str | None = None
    enrich_with_history: Annotated[int, Field(ge=0)] = 0
    # Ours: the id a client gave its frame (e.g. "msg123") when the server assigned a real one.
    client_message_id: str | None = None
    # Ours: what sent the message from outside a socket ("api", "schedule", "webhook"); an agent's handling of it
    # is recorded as a run (guilds.runtime.runs). Only on the wire when set: replies do not carry it.
    trigger: Annotated[str, StringConstraints(max_length=16)] | None = Field(default=None, exclude_if=lambda v: v is None)

    def __init__(self, /, **data: Any) -> None:
        """Direct construction raises InvalidMessage too (prefer `create` / `from_wire`)."""
        try:
            super().__init__(**data)
        except ValidationError as exc:
            raise InvalidMessage.from_pydantic(exc) from None

    # Tell pydantic this __init__ only wraps its own, so model_validate/model_validate_json
    # keep their fast path (without this they would call __init__ for every message).
    __init__.__pydantic_base_init__ = True  # type: ignore[attr-defined]

    @model_validator(mode="after")
    def _fill_from_id(self) -> Message:
        priority = id_priority(self.id)
        if self.priority is None:
            self.priority = priority
        elif self.priority != priority:
            raise ValueError(f"priority {self.priority} disagrees with the id's priority {priority}")
        if self.timestamp is None:
            self.timestamp = id_timestamp_ms(self.id)
        if not self.thread:
            self.thread = [self.id]
        return self

    # --- constructors and serialisers ------------------------------------------------

    @classmethod
    def create(
        cls,
        *,
        sender: AgentTag | dict[str, Any],
        topics: str | list[str],
        payload: dict[str, Any],
        format: str = RAW_JSON_FORMAT,
        priority: int | None = None,
        id: int | str | None = None,
        **fields: Any,
    ) -> Message:
        """A new message; its id comes from this process's generator unless given.

        `priority` defaults to NORMAL for a new id; with an explicit `id` it defaults to
        the id's own priority (and must agree with it if given).
        """
        if id is None:
            try:
                id = new_id(Priority.NORMAL if priority is None else priority)
            except ValueError as exc:
                raise InvalidMessage(f"invalid message: priority: {exc}", [("priority", str(exc))]) from None
        data = {**fields, "id": id, "sender": sender, "topics": topics, "payload": payload, "format": format}
        if priority is not None:
            data["priority"] = int(priority)
        return cls.from_wire(data)

    @classmethod
    def from_wire(cls, data: dict[str, Any]) -> Message:
        """A message from a decoded JSON object (ids as ints or strings)."""
        if not isinstance(data, dict):
            raise InvalidMessage(f"invalid message: expected a JSON object, got {type(data).__name__}")
        try:
            return cls.model_validate(data)
        except ValidationError as exc:
            raise InvalidMessage.from_pydantic(exc) from None

    @classmethod
    def from_json(cls, data: bytes | str) -> Message:
        try:
            return cls.model_validate_json(data)
        except ValidationError as exc:
            raise InvalidMessage.from_pydantic(exc) from None

    def to_wire(self) -> dict[str, Any]:
        """JSON-ready dict: ids as decimal strings, timestamp and priority as integers."""
        return self.model_dump(mode="json")

    def to_json(self) -> bytes:
        """The wire form as compact UTF-8 JSON bytes (pydantic's Rust serialiser: same bytes as orjson, faster)."""
        return self.__pydantic_serializer__.to_json(self)

    def clone(self) -> Message:
        """An independent copy (nothing mutable shared), for handing to another receiver.

        A JSON round trip: measured faster than `model_copy(deep=True)` for typical messages.
        """
        return type(self).model_validate_json(self.__pydantic_serializer__.to_json(self))

    # --- conveniences ----------------------------------------------------------------

    @property
    def topic_list(self) -> list[str]:
        return [self.topics] if isinstance(self.topics, str) else list(self.topics)

    @property
    def current_thread_id(self) -> int:
        return self.thread[-1]

    @property
    def root_thread_id(self) -> int:
        return self.thread[0]

    def is_tagged(self, agent: AgentTag) -> bool:
        """Whether `agent` is named by a tag in `recipient_list` (partial tags match)."""
        return any(tag.matches(agent) for tag in self.recipient_list)
