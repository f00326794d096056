"""Signing a trigger's event as a sender does (seed 004's X-Zerg-Timestamp and X-Zerg-Signature)."""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from typing import Any


def zerg_headers(secret: str, body: bytes, *, timestamp: int | None = None, zerg_form: bool = False) -> dict[str, str]:
    """Headers for the test client (HTTP_…): the hex HMAC-SHA256 of "{timestamp}.{raw body}", or with `zerg_form`,
    of the body re-serialised as zerg does (compact, sorted keys)."""
    timestamp = int(time.time()) if timestamp is None else timestamp
    signed = json.dumps(json.loads(body), separators=(",", ":"), sort_keys=True).encode() if zerg_form else body
    signature = hmac.new(secret.encode(), f"{timestamp}.".encode() + signed, hashlib.sha256).hexdigest()
    return {"HTTP_X_ZERG_TIMESTAMP": str(timestamp), "HTTP_X_ZERG_SIGNATURE": signature}


def as_body(event: Any) -> bytes:
    return json.dumps(event).encode()
