"""Credentials: access tokens (HS256 JWTs), refresh tokens and API keys, and how each is checked.

Refresh tokens and API keys are random secrets of which only the SHA-256 is stored; a JWT is
checked by its signature, expiry, issuer and type, with the one algorithm we issue (so a token
claiming `alg: none` or signed with another key is refused).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import jwt
from django.conf import settings

if TYPE_CHECKING:
    from django.contrib.auth.models import AbstractBaseUser

ALGORITHM = "HS256"
ISSUER = "guildsite"
ACCESS = "access"
API_KEY_PREFIX = "gsk_"
REFRESH_PREFIX = "gsr_"
# A JWT has three dot-separated parts; our keys and refresh tokens have none.
_JWT_DOTS = 2


class CredentialError(Exception):
    """The credential is malformed, expired, revoked or unknown; the message says which, for the client."""


def secret_hash(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def looks_like_jwt(credential: str) -> bool:
    return credential.count(".") == _JWT_DOTS


def new_api_key() -> tuple[str, str]:
    """(key, visible prefix). The prefix is the start of the key, so a user can match one to its row."""
    key = f"{API_KEY_PREFIX}{secrets.token_urlsafe(32)}"
    return key, key[: len(API_KEY_PREFIX) + 8]


def new_refresh_token() -> str:
    return f"{REFRESH_PREFIX}{secrets.token_urlsafe(32)}"


def password_stamp(user: AbstractBaseUser) -> str:
    """Changes when the user's password does (an HMAC of its hash under a salt of its own): tokens
    issued under an old password stop working, and the stamp tells nothing about the hash."""
    from django.utils.crypto import salted_hmac

    return salted_hmac("guildsite.accounts.tokens.password_stamp", user.password, algorithm="sha256").hexdigest()[:32]


def stamp_matches(user: AbstractBaseUser, stamp: str) -> bool:
    return hmac.compare_digest(password_stamp(user), stamp or "")


def access_token_encode(*, user: AbstractBaseUser, lifetime: timedelta | None = None,
                        sign_in: int | None = None) -> tuple[str, int]:
    """(token, seconds until it expires). `sign_in`, the refresh token's row it comes from: logging that sign-in
    out ends the token too."""
    lifetime = settings_lifetime() if lifetime is None else lifetime
    now = datetime.now(UTC)
    claims = {"sub": str(user.pk), "username": user.get_username(), "iss": ISSUER, "typ": ACCESS, "iat": now,
              "exp": now + lifetime, "jti": secrets.token_hex(8), "pwd": password_stamp(user)}
    if sign_in is not None:
        claims["sid"] = sign_in
    return jwt.encode(claims, settings.GUILDSITE_JWT_SECRET, algorithm=ALGORITHM), int(lifetime.total_seconds())


def settings_lifetime() -> timedelta:
    return timedelta(seconds=settings.GUILDSITE_ACCESS_TOKEN_SECONDS)


def access_token_decode(token: str) -> dict[str, Any]:
    """The claims of a valid access token; CredentialError saying what is wrong otherwise."""
    try:
        claims = jwt.decode(token, settings.GUILDSITE_JWT_SECRET, algorithms=[ALGORITHM], issuer=ISSUER,
                            options={"require": ["exp", "iat", "sub", "iss"]})
    except jwt.ExpiredSignatureError:
        raise CredentialError("the access token has expired: get a new one from /api/auth/token/refresh") from None
    except jwt.InvalidTokenError as exc:
        raise CredentialError(f"the access token is not valid ({exc})") from None
    if claims.get("typ") != ACCESS or not str(claims.get("sub", "")).isdigit():
        raise CredentialError("the token is not a guildsite access token")
    return claims
