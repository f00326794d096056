"""Client frames in, messages out: the socket protocol's input rules, in one place.

Input is lenient (README "Protocol"): `conversationId` or `conversation_id`; ids as numbers,
numeric strings or any string; timestamps as ISO strings or numbers. The server gives every
accepted frame its own id (a client-chosen id could collide with, and so silently replace,
another user's message) and echoes the client's `id` back as `client_message_id`. The
server's clock stamps every message; a client's `timestamp` is not trusted for ordering.
"""

from __future__ import annotations

from typing import Any

import orjson

from guilds.runtime import formats
from messaging import topics as topic_names
from messaging.errors import InvalidMessage
from messaging.ids import Priority
from messaging.message import AgentTag, Message

INVALID_JSON = "INVALID_JSON"
INVALID_FRAME = "INVALID_FRAME"
UNKNOWN_FORMAT = "UNKNOWN_FORMAT"
PAYLOAD_TOO_LARGE = "PAYLOAD_TOO_LARGE"
RATE_LIMITED = "RATE_LIMITED"
GUILD_STOPPED = "GUILD_STOPPED"
UNAVAILABLE = "UNAVAILABLE"
FORBIDDEN = "FORBIDDEN"
UNAUTHENTICATED = "UNAUTHENTICATED"
INVALID_USER = "INVALID_USER"
NOT_FOUND = "NOT_FOUND"
TOO_MANY_SOCKETS = "TOO_MANY_SOCKETS"
RUN_ENDED = "RUN_ENDED"
RUN_ID_MAX_CHARS = 64

SERVER_TAG = AgentTag(id="guildsite", name="guildsite")


class FrameError(Exception):
    def __init__(self, error_type: str, message: str, *, client_message_id: str | None = None) -> None:
        super().__init__(message)
        self.error_type = error_type
        self.client_message_id = client_message_id


def decode(text: str | None, data: bytes | None, *, max_bytes: int,
           shape: str = "a JSON object with 'format' and 'payload'") -> dict[str, Any]:
    raw = text.encode() if text is not None else (data or b"")
    if len(raw) > max_bytes:
        raise FrameError(PAYLOAD_TOO_LARGE, f"frame of {len(raw)} bytes is over the limit of {max_bytes} bytes")
    try:
        frame = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise FrameError(INVALID_JSON, f"frame is not valid JSON: {exc}") from None
    if not isinstance(frame, dict):
        raise FrameError(INVALID_FRAME, f"a frame must be {shape}")
    return frame


def _client_id(frame: dict[str, Any]) -> str | None:
    raw = frame.get("id")
    return None if raw is None else str(raw)


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
    # Users' messages go no higher than normal: urgent and high are the guild's own (heartbeats, launch).
    if isinstance(priority, bool) or not isinstance(priority, int) or not Priority.NORMAL <= priority <= 7:
        raise FrameError(INVALID_FRAME, "'priority' must be an integer from 4 (normal) to 7 (lowest)",
                         client_message_id=client_id)
    fields: dict[str, Any] = {
        "conversation_id": frame.get("conversation_id", frame.get("conversationId")),
        "client_message_id": client_id,
    }
    for key in ("in_response_to", "recipient_list", "traceparent"):
        if frame.get(key) is not None:
            fields[key] = frame[key]
    try:
        return Message.create(
            sender=AgentTag(id=user_id, name=user_name), topics=topic_names.user_inbox(user_id),
            payload=payload, format=name, priority=priority, **fields,
        )
    except InvalidMessage as exc:
        raise FrameError(INVALID_FRAME, str(exc), client_message_id=client_id) from None


def cancel_request(frame: dict[str, Any]) -> tuple[str, str | None]:
    """A cancelRequest frame from the user socket: (run id, the frame's own id)."""
    client_id = _client_id(frame)
    run_id = _payload(frame, client_id, required=True).get("run_id")
    if not isinstance(run_id, str) or not 0 < len(run_id) <= RUN_ID_MAX_CHARS:
        raise FrameError(INVALID_FRAME, f"a cancelRequest's payload is {{\"run_id\": \"<id>\"}} "
                         f"(at most {RUN_ID_MAX_CHARS} characters)", client_message_id=client_id)
    return run_id, client_id


def system_request(frame: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """A frame from the system socket: (canonical format, payload)."""
    client_id = _client_id(frame)
    name = _format(frame, formats.SYSTEM_REQUEST_FORMATS, client_id)
    return formats.canonical_format(name), _payload(frame, client_id, required=False)


def error_frame(error_type: str, message: str, *, topic: str, client_message_id: str | None = None) -> bytes:
    """The seed's ErrorMessage, as sent to one socket (not stored in any stream)."""
    error = Message.create(
        sender=SERVER_TAG, topics=[topic], format=formats.ERROR_MESSAGE, is_error_message=True,
        payload={"agent_type": "guildsite.sockets", "error_type": error_type, "error_message": message},
        client_message_id=client_message_id,
    )
    return error.to_json()
