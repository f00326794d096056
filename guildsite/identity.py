"""Who is acting: the one resolver, for REST, pages and sockets alike.

Credentials, in the order they are looked at:
- `Authorization: Bearer <JWT or API key>` (REST; sockets from programs), or `?token=` on a socket;
- the Django session cookie (the browser: sign-in page, chat page, admin), on a socket only when
  the `Origin` is the site's own (cross-site WebSocket hijacking);
- with `AUTH_DISABLED=1` (development) and no credential, the user the request names, as the seed
  does: an `X-User-Id` header or `user_id` parameter on REST, the user id in a socket URL. The user
  row is made on first use.

A credential that is present but bad is refused (401 / 4401), never ignored. Views read the acting
`Actor` with `actor_of(request)`; consumers read `scope["actor"]` (and `scope["auth_error"]`).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import timedelta
from http.cookies import SimpleCookie
from importlib import import_module
from types import SimpleNamespace
from typing import Any
from urllib.parse import parse_qs, urlparse

from channels.db import database_sync_to_async
from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractBaseUser, AnonymousUser
from django.http.request import split_domain_port, validate_host
from django.utils import timezone
from rest_framework import exceptions
from rest_framework.authentication import BaseAuthentication, CSRFCheck
from rest_framework.permissions import BasePermission
from rest_framework.request import Request

from guildsite.accounts import services as accounts
from guildsite.accounts.models import ApiKey, Role, Scope
from guildsite.accounts.names import USER_ID_RULE, is_user_id
from guildsite.accounts.tokens import CredentialError, access_token_decode, looks_like_jwt, secret_hash, stamp_matches

logger = logging.getLogger(__name__)

# An API key's last use is written at most this often: not a database write per request.
_LAST_USED_RESOLUTION = timedelta(seconds=60)


@dataclass(frozen=True)
class Actor:
    """Who a request or socket acts as.

    `api_key` caps the user's rights: the key's organisation only, at the key's scope. `development`
    is set when AUTH_DISABLED is on: guildsite.permissions then keeps development's open rules.
    """

    user: AbstractBaseUser | None = None
    api_key: ApiKey | None = None
    development: bool = False
    # When the credential stops being valid (epoch seconds; None: it does not expire by itself).
    expires_at: float | None = None
    # guildsite.permissions keeps what it looked up for this actor here (one request or socket).
    memo: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)

    @property
    def is_authenticated(self) -> bool:
        return self.user is not None

    @property
    def username(self) -> str | None:
        return self.user.get_username() if self.user is not None else None

    @property
    def is_staff(self) -> bool:
        return bool(self.user is not None and self.user.is_staff and self.api_key is None)

    @property
    def is_superuser(self) -> bool:
        return bool(self.user is not None and self.user.is_superuser and self.api_key is None)

    @property
    def key_role(self) -> str | None:
        """The most an API key lets its user do in the key's organisation."""
        if self.api_key is None:
            return None
        return Role.MEMBER if Scope.WRITE in self.api_key.scopes else Role.VIEWER


def auth_disabled() -> bool:
    return bool(settings.AUTH_DISABLED)


# --- credentials -------------------------------------------------------------------------


def _user_by_pk(pk: str) -> AbstractBaseUser | None:
    return get_user_model().objects.filter(pk=int(pk)).first()


def _api_key_actor(credential: str) -> Actor:
    key = ApiKey.objects.select_related("created_by", "organization").filter(key_hash=secret_hash(credential)).first()
    if key is None:
        raise CredentialError("unknown API key")
    now = timezone.now()
    if key.revoked_at is not None:
        raise CredentialError(f"the API key {key.prefix}… was revoked")
    if key.expires_at is not None and key.expires_at <= now:
        raise CredentialError(f"the API key {key.prefix}… expired at {key.expires_at.isoformat()}")
    if key.agent_registration_id:
        raise CredentialError(f"the API key {key.prefix}… works only for the external agent {key.agent_registration_id}")
    if not key.created_by.is_active:
        raise CredentialError("the account behind this API key is disabled")
    if key.last_used_at is None or now - key.last_used_at >= _LAST_USED_RESOLUTION:
        ApiKey.objects.filter(pk=key.pk).update(last_used_at=now)
    return Actor(user=key.created_by, api_key=key, development=auth_disabled(),
                 expires_at=key.expires_at.timestamp() if key.expires_at else None)


def actor_from_credential(credential: str) -> Actor:
    """The actor behind a JWT or an API key; CredentialError (with the reason) when it is not valid."""
    credential = credential.strip()
    if not credential:
        raise CredentialError("the credential is empty")
    if not looks_like_jwt(credential):
        return _api_key_actor(credential)
    claims = access_token_decode(credential)
    user = _user_by_pk(claims["sub"])
    if user is None or not user.is_active:
        raise CredentialError("the token's user does not exist or is disabled")
    if claims.get("username") != user.get_username():
        raise CredentialError("the token was issued to another username: sign in again")
    if not stamp_matches(user, claims.get("pwd", "")):
        raise CredentialError("the password changed since this token was issued: sign in again")
    sign_in = claims.get("sid")
    if sign_in is not None and (not isinstance(sign_in, int) or accounts.signed_out(user_pk=user.pk, sign_in=sign_in)):
        raise CredentialError("this sign-in was logged out: sign in again")
    return Actor(user=user, development=auth_disabled(), expires_at=float(claims["exp"]))


def development_actor(username: str) -> Actor:
    """AUTH_DISABLED: the user a request names, trusted (made on first use)."""
    if not is_user_id(username):
        raise accounts.InvalidName(f"'{username}' is not a valid user id: {USER_ID_RULE}")
    return Actor(user=accounts.user_get_or_create(username), development=True)


def anonymous() -> Actor:
    return Actor(development=auth_disabled())


# --- REST (DRF) --------------------------------------------------------------------------


def actor_of(request: Request) -> Actor:
    """The acting Actor of a DRF request (anonymous when nothing authenticated it)."""
    auth = getattr(request, "auth", None)
    if isinstance(auth, Actor):
        return auth
    user = getattr(request, "user", None)
    if user is not None and user.is_authenticated:
        return Actor(user=user, development=auth_disabled())
    return anonymous()


def _not_authenticated(detail: str) -> exceptions.NotAuthenticated:
    return exceptions.NotAuthenticated(detail)


class BearerAuthentication(BaseAuthentication):
    """`Authorization: Bearer <access token or API key>`."""

    keyword = "bearer"

    def authenticate(self, request: Request) -> tuple[AbstractBaseUser, Actor] | None:
        header = request.headers.get("Authorization")
        if not header:
            return None
        scheme, _, credential = header.strip().partition(" ")
        if scheme.lower() != self.keyword or not credential.strip():
            raise _not_authenticated("send the credential as 'Authorization: Bearer <access token or API key>'")
        try:
            actor = actor_from_credential(credential)
        except CredentialError as exc:
            raise _not_authenticated(str(exc)) from None
        return actor.user, actor

    def authenticate_header(self, request: Request) -> str:
        return 'Bearer realm="guildsite"'


class SessionCookieAuthentication(BaseAuthentication):
    """The browser's signed-in session, with Django's CSRF check on unsafe methods."""

    def authenticate(self, request: Request) -> tuple[AbstractBaseUser, Actor] | None:
        user = getattr(request._request, "user", None)
        if user is None or not user.is_active:
            return None
        self._check_csrf(request)
        return user, Actor(user=user, development=auth_disabled())

    @staticmethod
    def _check_csrf(request: Request) -> None:
        check = CSRFCheck(lambda _request: None)
        check.process_request(request)
        reason = check.process_view(request, None, (), {})
        if reason:
            raise exceptions.PermissionDenied(f"CSRF failed: {reason}")


class DevelopmentAuthentication(BaseAuthentication):
    """AUTH_DISABLED only: the user an `X-User-Id` header or `user_id` parameter names, trusted."""

    def authenticate(self, request: Request) -> tuple[AbstractBaseUser, Actor] | None:
        if not auth_disabled():
            return None
        username = self._named_user(request)
        if username is None:
            return None
        try:
            actor = development_actor(username)
        except accounts.InvalidName as exc:
            raise exceptions.ValidationError({"user_id": [str(exc)]}) from None
        return actor.user, actor

    @staticmethod
    def _named_user(request: Request) -> str | None:
        named = request.headers.get("X-User-Id") or request.query_params.get("user_id")
        if not named and request.method in {"POST", "PUT", "PATCH", "DELETE"} and request.content_type:
            # The seed's bodies say who acts (a launch's or a stop's `user_id`, an upload's form field).
            data = request.data
            named = data.get("user_id") if hasattr(data, "get") else None
        return named.strip() if isinstance(named, str) and named.strip() else None


class SignedIn(BasePermission):
    """Every API call needs an authenticated caller, except in development (AUTH_DISABLED)."""

    message = "Authentication credentials were not provided: send 'Authorization: Bearer <token>'."

    def has_permission(self, request: Request, view: Any) -> bool:
        return auth_disabled() or actor_of(request).is_authenticated


# --- sockets -----------------------------------------------------------------------------


def _headers(scope: dict[str, Any]) -> dict[str, str]:
    return {name.decode("latin-1").lower(): value.decode("latin-1") for name, value in scope.get("headers", [])}


def origin_allowed(origin: str | None, host: str | None) -> bool:
    """A browser's socket may use the session cookie only from the site's own pages."""
    if not origin or origin == "null":
        return False
    if origin in settings.CSRF_TRUSTED_ORIGINS:
        return True
    parsed = urlparse(origin)
    # Served over HTTPS, the site's pages are https ones: a page at http://<host> is whoever sits on the path.
    schemes = {"https"} if settings.GUILDSITE_HTTPS else {"http", "https"}
    return parsed.scheme in schemes and bool(host) and parsed.netloc.lower() == (host or "").lower()


def _session_user(session_key: str) -> AbstractBaseUser | None:
    from django.contrib.auth import get_user

    store = import_module(settings.SESSION_ENGINE).SessionStore(session_key)
    user = get_user(SimpleNamespace(session=store))
    return user if user.is_authenticated else None


def socket_credential(scope: dict[str, Any]) -> str:
    """The credential a socket handshake carries (`?token=`, else `Authorization: Bearer`), or ""."""
    query = parse_qs(scope.get("query_string", b"").decode("latin-1"))
    token = (query.get("token") or [""])[-1]
    header = _headers(scope).get("authorization", "")
    if header and not token:
        scheme, _, token = header.strip().partition(" ")
        if scheme.lower() != "bearer":
            raise CredentialError("the Authorization header must be 'Bearer <access token or API key>'")
    return token.strip()


def resolve_socket_actor(scope: dict[str, Any]) -> tuple[Actor, str | None]:
    """(actor, why it is anonymous). Blocking: call through sync_to_async."""
    headers = _headers(scope)
    try:
        token = socket_credential(scope)
    except CredentialError as exc:
        return anonymous(), str(exc)
    if token:
        try:
            return actor_from_credential(token), None
        except CredentialError as exc:
            return anonymous(), str(exc)
    if auth_disabled():
        # Development trusts the user the URL names, before any signed-in session (as X-User-Id on REST).
        named = _named_in_path(scope)
        if named and is_user_id(named):
            return development_actor(named), None
    cookies = SimpleCookie(headers.get("cookie", ""))
    session = cookies.get(settings.SESSION_COOKIE_NAME)
    if session is not None and session.value:
        if not origin_allowed(headers.get("origin"), headers.get("host")):
            return anonymous(), (f"a signed-in session is accepted only from this site's pages, "
                                 f"not from origin {headers.get('origin')!r}")
        user = _session_user(session.value)
        if user is not None:
            return Actor(user=user, development=auth_disabled()), None
    if auth_disabled():
        return anonymous(), None
    return anonymous(), "no credentials: connect with ?token=<access token or API key>, or sign in"


def _named_in_path(scope: dict[str, Any]) -> str | None:
    """The user id in a guild socket's path (ASGI paths arrive decoded), before URL routing parses it; the live
    socket's `?user_id=` (as REST's in development)."""
    parts = scope.get("path", "").strip("/").split("/")
    if len(parts) >= 5 and parts[0] == "ws" and parts[1] == "guilds" and parts[3] in {"syscomms", "usercomms"}:
        return parts[4]
    if parts == ["api", "ws"]:
        query = parse_qs(scope.get("query_string", b"").decode("latin-1"))
        return (query.get("user_id") or [None])[-1]
    return None


class SocketAuthMiddleware:
    """ASGI middleware for the sockets: sets `scope["actor"]`, `scope["user"]` and `scope["auth_error"]`.

    It never refuses a handshake itself: a refusal before `accept()` reaches a browser as HTTP 403
    and close code 1006, so the consumer accepts and then closes with 4401.
    """

    def __init__(self, inner: Any) -> None:
        self.inner = inner

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> Any:
        host = _headers(scope).get("host")
        if host and not validate_host(split_domain_port(host)[0], settings.ALLOWED_HOSTS):
            actor, why = anonymous(), f"host {host!r} is not served here (ALLOWED_HOSTS)"
        else:
            try:
                actor, why = await database_sync_to_async(resolve_socket_actor)(scope)
            except accounts.InvalidName as exc:
                actor, why = anonymous(), str(exc)
        scope = dict(scope, actor=actor, user=actor.user or AnonymousUser(), auth_error=why)
        return await self.inner(scope, receive, send)


# --- who a request body names ------------------------------------------------------------


class NamedAnother(Exception):
    """With auth on, a body named another user than the caller (403)."""


class InvalidInput(Exception):
    """A user or organisation named in a request is unusable or missing (400 on `field`)."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


def acting_user(actor: Actor, named: str | None, *, must_be_caller: bool, field: str) -> AbstractBaseUser:
    """The user a request acts for. In development the one it names (made on first use); with auth on
    the caller, and a different name is NamedAnother when `must_be_caller` (else it is replaced)."""
    named = named.strip() if isinstance(named, str) and named.strip() else None
    if actor.development and named is not None and actor.api_key is None:
        try:
            return development_actor(named).user
        except accounts.InvalidName as exc:
            raise InvalidInput(field, str(exc)) from None
    if actor.user is None:
        raise InvalidInput(field, f"say who is acting: a '{field}' field or an X-User-Id header")
    if must_be_caller and named is not None and named != actor.username:
        raise NamedAnother(f"{field} '{named}' is not you ({actor.username}): you act only as yourself")
    return actor.user


def acting_organization_id(actor: Actor, user: AbstractBaseUser, named: str | None, *, field: str) -> str:
    """The organisation a request acts in: the one it names, else the user's first where they may launch.
    Development makes a named or missing one on first use; with auth on, the permission check that
    follows answers 404 for one the caller is not in."""
    named = named.strip() if isinstance(named, str) and named.strip() else None
    if actor.development and actor.api_key is None:
        try:
            if named is not None:
                return accounts.organization_for_development(organization_id=named, user=user).pk
            return accounts.organization_default_for(user, create=True).pk
        except accounts.InvalidName as exc:
            raise InvalidInput(field, str(exc)) from None
    if named is not None:
        return named
    if actor.api_key is not None:
        return actor.api_key.organization_id
    default = accounts.organization_default_for(user, create=False)
    if default is None:
        raise InvalidInput(field, f"name the organisation in '{field}': you are a member of none (POST /api/organizations)")
    return default.pk
