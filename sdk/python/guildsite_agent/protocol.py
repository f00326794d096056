"""Frames of the agent socket: building what we send, parsing what we receive."""

from __future__ import annotations

import json
import logging
import platform
import socket
from typing import Any

log = logging.getLogger("guildsite_agent")

TEXT_FORMAT = "rustic_ai.core.ui_protocol.types.TextFormat"
CLOSE_NORMAL = 1000
CLOSE_REFUSED = {4401, 4403}
CLOSE_REPLACED = 4409


def encode(frame: dict) -> str:
    return json.dumps(frame, separators=(",", ":"))


def decode(raw: str | bytes) -> dict | None:
    try:
        frame = json.loads(raw)
    except ValueError:
        return None
    return frame if isinstance(frame, dict) and "type" in frame else None


def register(name: str, version: str, capabilities: list[str]) -> dict:
    return {"type": "register", "name": name, "version": version, "capabilities": capabilities,
            "hostname": socket.gethostname(), "platform": platform.platform()}


def heartbeat(status: str, metrics: dict | None = None) -> dict:
    frame: dict[str, Any] = {"type": "heartbeat", "status": status}
    if metrics is not None:
        frame["metrics"] = metrics
    return frame


def ack(delivery_id: str) -> dict:
    return {"type": "ack", "delivery_id": delivery_id}


def publish(guild_id: str, payload: dict, format: str, in_response_to: Any = None, conversation_id: Any = None) -> dict:
    return {"type": "publish", "guild_id": guild_id, "format": format, "payload": payload,
            "in_response_to": in_response_to, "conversation_id": conversation_id}


def command_ack(command_id: str) -> dict:
    return {"type": "command_ack", "command_id": command_id}


def command_result(command_id: str, success: bool, *, output: str = "", error_message: str = "",
                   exit_code: int | None = None, execution_time_ms: int = 0) -> dict:
    return {"type": "command_result", "command_id": command_id, "success": success, "output": output,
            "error_message": error_message, "exit_code": exit_code, "execution_time_ms": execution_time_ms}


def subscribe_status() -> dict:
    return {"type": "subscribe_status"}


def pong() -> dict:
    return {"type": "pong"}
