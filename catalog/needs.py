"""What a blueprint needs from the site beyond what every guild gets, said where people pick one (two blueprints of
the same name and version may differ exactly there)."""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError

from messaging.config import MessagingConfig
from messaging.errors import UnknownBackend

REDIS = "redis"


def blueprint_needs(spec: dict[str, Any] | None) -> list[str]:
    """`["redis"]` when the spec names the Redis messaging backend (its own Redis, whatever the site runs on)."""
    messaging = ((spec or {}).get("properties") or {}).get("messaging")
    if not messaging:
        return []
    try:
        return [REDIS] if MessagingConfig.model_validate(messaging).is_redis else []
    except (ValidationError, ValueError, UnknownBackend):  # a spec stored before a backend went away promises nothing
        return []
