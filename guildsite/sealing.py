"""Secrets the server must read back to use (the HMAC keys of triggers and webhooks), kept encrypted at rest.

A hash would do for a secret that is only compared (API keys, refresh tokens: guildsite.accounts.tokens), but a
signing key is used as itself. These are sealed with Fernet under a key derived from GUILDSITE_SEALING_KEY
(default: SECRET_KEY); changing that key leaves sealed secrets unreadable, so rotate them after.
"""

from __future__ import annotations

import base64
import hashlib

from cryptography.fernet import Fernet, InvalidToken
from django.conf import settings


class SealBroken(Exception):
    """A sealed secret could not be opened (the sealing key changed, or the value was altered)."""


def _fernet() -> Fernet:
    material = hashlib.sha256(b"guildsite-sealing:" + settings.GUILDSITE_SEALING_KEY.encode()).digest()
    return Fernet(base64.urlsafe_b64encode(material))


def seal(secret: str) -> str:
    return _fernet().encrypt(secret.encode()).decode()


def unseal(sealed: str) -> str:
    try:
        return _fernet().decrypt(sealed.encode()).decode()
    except (InvalidToken, ValueError):
        raise SealBroken("a sealed secret could not be opened: was GUILDSITE_SEALING_KEY (or SECRET_KEY) changed?") \
            from None
