"""Short, URL- and topic-safe random ids for guilds, blueprints, categories and agents."""

from __future__ import annotations

import secrets
import string

_ALPHABET = string.ascii_letters + string.digits


def new_public_id(length: int = 22) -> str:
    # 22 base62 characters carry ~131 bits: as unique as a UUID, shorter in URLs and topic names.
    return "".join(secrets.choice(_ALPHABET) for _ in range(length))
