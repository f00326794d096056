"""Client frames in, messages out: the socket protocol's input rules, in one place.

Input is lenient (README "Protocol"): `conversationId` or `conversation_id`; ids as numbers,
numeric strings or any string; timestamps as ISO strings or numbers. A client id that is a
plausible message id (embedded time within the last hour, not ahead of the clock) is kept,
so a resend of the same frame is recognised and handled once; any other id (`"msg123"`)
is replaced by a server id and echoed back as `client_message_id`. The server's clock
stamps every message; a client's `timestamp` is not trusted for ordering.
"""

from __future__ import annotations

import time
from typing import Any

import orjson

from guilds.runtime import formats
from messaging import topics as topic_names
from messaging.errors import InvalidMessage, InvalidMessageId
from messaging.ids import Priority, id_priority, id_timestamp_ms, parse_id
from messaging.message import AgentTag, Message

INVALID_JSON = "INVALID_JSON"
INVALID_FRAME = "INVALID_FRAME"
UNKNOWN_FORMAT = "UNKNOWN_FORMAT"
PAYLOAD_TOO_LARGE = "PAYLOAD_TOO_LARGE"
RATE_LIMITED = "RATE_LIMITED"
GUILD_STOPPED = "GUILD_STOPPED"
UNAVAILABLE = "UNAVAILABLE"

SERVER_TAG = AgentTag(id="guildsite", name="guildsite")
_CLIENT_ID_MAX_AGE_MS = 3600 * 1000
_CLIENT_ID_MAX_AHEAD_MS = 1000


class FrameError(Exception):
    def __init__(self, error_type: str, message: str, *, client_message_id: str | None = None) -> None:
        super().__init__(message)
        self.error_type = error_type
        self.client_message_id = client_message_id


def decode(text: str | None, data: bytes | None, *, max_bytes: int) -> dict[str, Any]:
    raw = text.encode() if text is not None else (data or b"")
    if len(raw) > max_bytes:
        raise FrameError(PAYLOAD_TOO_LARGE, f"frame of {len(raw)} bytes is over the limit of {max_bytes} bytes")
    try:
        frame = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise FrameError(INVALID_JSON, f"frame is not valid JSON: {exc}") from None
    if not isinstance(frame, dict):
        raise FrameError(INVALID_FRAME, "a frame must be a JSON object with 'format' and 'payload'")
    return frame


def _client_id(frame: dict[str, Any]) -> str | None:
    raw = frame.get("id")
    return None if raw is None else str(raw)


def _message_id(raw: Any) -> int | None:
    """The client's id if it is a plausible, current message id; None means 'assign one'."""
    if raw is None or isinstance(raw, bool):
        return None
    try:
        candidate = parse_id(raw)
    except (InvalidMessageId, ValueError, TypeError):
        return None
    now_ms = time.time() * 1000
    stamped = id_timestamp_ms(candidate)
    if now_ms - _CLIENT_ID_MAX_AGE_MS <= stamped <= now_ms + _CLIENT_ID_MAX_AHEAD_MS:
        return candidate
    return None


def _format(frame: dict[str, Any], allowed: frozenset[str], client_id: str | None) -> str:
    name = frame.get("format")
    if not isinstance(name, str) or not name:
        raise FrameError(INVALID_FRAME, "a frame needs a 'format' string", client_message_id=client_id)
    if formats.canonical_format(name) not in allowed:
        raise FrameError(UNKNOWN_FORMAT, f"unknown format '{name}'; accepted here: {', '.join(sorted(allowed))}",
                         client_message_id=client_id)
    return name


def _payload(frame: dict[str, Any], client_id: str | None, *, required: bool) -> dict[str, Any]:
    payload = frame.get("payload")
    if payload is None and not required:
        return {}
    if not isinstance(payload, dict):
        raise FrameError(INVALID_FRAME, "'payload' must be a JSON object", client_message_id=client_id)
    return payload


def user_message(frame: dict[str, Any], *, user_id: str, user_name: str) -> Message:
    """A frame from the user socket as the message published on the user's inbox."""
    client_id = _client_id(frame)
    name = _format(frame, formats.USER_FORMATS, client_id)
    payload = _payload(frame, client_id, required=True)
    priority = frame.get("priority", Priority.NORMAL)
    if isinstance(priority, bool) or not isinstance(priority, int) or not 0 <= priority <= 7:
        raise FrameError(INVALID_FRAME, "'priority' must be an integer from 0 (urgent) to 7 (lowest)",
                         client_message_id=client_id)
    message_id = _message_id(frame.get("id"))
    if message_id is not None and "priority" in frame and id_priority(message_id) != priority:
        message_id = None  # the id says another priority: the frame's explicit priority wins
    fields: dict[str, Any] = {
        "conversation_id": frame.get("conversation_id", frame.get("conversationId")),
        "client_message_id": client_id if message_id is None else None,
    }
    for key in ("in_response_to", "recipient_list", "thread", "traceparent"):
        if frame.get(key) is not None:
            fields[key] = frame[key]
    if fields.get("thread") is not None and message_id is None:
        fields.pop("thread")  # a client thread names ids; ours is rebuilt from the new id
    try:
        return Message.create(
            id=message_id, sender=AgentTag(id=user_id, name=user_name), topics=topic_names.user_inbox(user_id),
            payload=payload, format=name, priority=priority, **fields,
        )
    except InvalidMessage as exc:
        raise FrameError(INVALID_FRAME, str(exc), client_message_id=client_id) from None


def system_request(frame: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """A frame from the system socket: (canonical format, payload)."""
    client_id = _client_id(frame)
    name = _format(frame, formats.SYSTEM_REQUEST_FORMATS, client_id)
    return formats.canonical_format(name), _payload(frame, client_id, required=False)


def error_frame(error_type: str, message: str, *, topic: str, client_message_id: str | None = None) -> bytes:
    """The seed's ErrorMessage, as sent to one socket (not stored in any stream)."""
    error = Message.create(
        sender=SERVER_TAG, topics=topic, format=formats.ERROR_MESSAGE, is_error_message=True,
        payload={"agent_type": "guildsite.sockets", "error_type": error_type, "error_message": message},
        client_message_id=client_message_id,
    )
    return error.to_json()
