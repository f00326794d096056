"""Account writes: users, organisations, memberships, API keys and tokens.

The REST views, the management commands and development mode's first-use provisioning all
come through here, so the rules (names, the last admin, hashing) hold whichever way in.
"""

from __future__ import annotations

import logging
import secrets
from datetime import datetime, timedelta

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractBaseUser
from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.utils import timezone

from guildsite.accounts import tokens
from guildsite.accounts.models import ApiKey, Membership, Organization, RefreshToken, Role, Scope
from guildsite.accounts.names import (
    ORGANIZATION_ID_RULE,
    USER_ID_RULE,
    is_organization_id,
    is_user_id,
    organization_slug,
)

logger = logging.getLogger(__name__)
User = get_user_model()


class AccountError(Exception):
    """A request the account rules refuse; the message says why."""


class InvalidName(AccountError):
    pass


class AlreadyExists(AccountError):
    pass


class UnknownUser(AccountError):
    pass


class LastAdmin(AccountError):
    """An organisation keeps at least one admin."""


class ScopeAboveRole(AccountError):
    """A key may not do more than its creator: a viewer's keys only read."""


class InvalidPassword(AccountError):
    def __init__(self, messages: list[str]) -> None:
        super().__init__(" ".join(messages))
        self.messages = messages


# --- users -----------------------------------------------------------------------------


def user_create(*, username: str, password: str | None, email: str = "", is_staff: bool = False) -> AbstractBaseUser:
    """A user who can sign in with `password` (None: no password, e.g. created on first use in development)."""
    if not is_user_id(username):
        raise InvalidName(f"'{username}' is not a valid user id: {USER_ID_RULE}")
    user = User(username=username, email=email or "", is_staff=is_staff)
    if password is None:
        user.set_unusable_password()
    else:
        try:
            validate_password(password, user)
        except ValidationError as exc:
            raise InvalidPassword(list(exc.messages)) from None
        user.set_password(password)
    try:
        with transaction.atomic():
            user.save(force_insert=True)
    except IntegrityError:
        raise AlreadyExists(f"a user named '{username}' already exists") from None
    logger.info("user created", extra={"username": username})
    return user


def user_get_or_create(username: str) -> AbstractBaseUser:
    """The user of that name, made on first use without a password (development's trusted names, demo data)."""
    user = User.objects.filter(username=username).first()
    if user is not None:
        return user
    try:
        return user_create(username=username, password=None)
    except AlreadyExists:  # made by a concurrent request
        return User.objects.get(username=username)


# --- organisations ---------------------------------------------------------------------


def organization_create(*, name: str, creator: AbstractBaseUser, id: str | None = None) -> Organization:
    """Create an organisation with `creator` as its admin.

    A given id must be free (AlreadyExists); without one the id is derived from the name, with
    `-2`, `-3`... when the derived one is taken.
    """
    name = name.strip()
    if not name:
        raise InvalidName("an organisation needs a name")
    if id is not None:
        if not is_organization_id(id):
            raise InvalidName(f"'{id}' is not a valid organisation id: {ORGANIZATION_ID_RULE}")
        candidates = [id]
    else:
        base = organization_slug(name)
        # A few numbered tries, then random suffixes: a popular name costs a bounded number of inserts.
        candidates = [base, *(f"{base[:58]}-{n}" for n in range(2, 10)),
                      *(f"{base[:54]}-{secrets.token_hex(4)}" for _ in range(5))]
    for candidate in candidates:
        try:
            with transaction.atomic():
                organization = Organization.objects.create(id=candidate, name=name)
                Membership.objects.create(user=creator, organization=organization, role=Role.ADMIN)
        except IntegrityError:
            continue
        logger.info("organisation created", extra={"organization_id": candidate, "username": creator.get_username()})
        return organization
    raise AlreadyExists(f"an organisation with id '{candidates[0]}' already exists")


def organization_for_development(*, organization_id: str, user: AbstractBaseUser) -> Organization:
    """Development mode: the organisation a request names is made on first use (the user its admin),
    and the user joins it as a member if they are not in it yet."""
    if not is_organization_id(organization_id):
        raise InvalidName(f"'{organization_id}' is not a valid organisation id: {ORGANIZATION_ID_RULE}")
    organization = Organization.objects.filter(pk=organization_id).first()
    if organization is None:
        try:
            return organization_create(name=organization_id, creator=user, id=organization_id)
        except AlreadyExists:
            organization = Organization.objects.get(pk=organization_id)
    Membership.objects.get_or_create(user=user, organization=organization, defaults={"role": Role.MEMBER})
    return organization


def organization_default_for(user: AbstractBaseUser, *, create: bool) -> Organization | None:
    """The organisation a launch goes to when none is named: the user's first where they may launch
    (member or admin); in development, one of their own is made when they have none."""
    membership = (Membership.objects.filter(user=user, role__in=[Role.MEMBER, Role.ADMIN])
                  .select_related("organization").order_by("created_at").first())
    if membership is not None:
        return membership.organization
    if not create:
        return None
    return organization_create(name=user.get_username(), creator=user)


# --- memberships -----------------------------------------------------------------------


def membership_add(*, organization: Organization, username: str, role: str) -> Membership:
    user = User.objects.filter(username=username).first()
    if user is None:
        raise UnknownUser(f"there is no user '{username}'")
    try:
        with transaction.atomic():
            return Membership.objects.create(user=user, organization=organization, role=Role(role))
    except IntegrityError:
        raise AlreadyExists(f"'{username}' is already in {organization.id}") from None


def _keep_an_admin(membership: Membership) -> None:
    # The organisation's row is the lock: two admins demoting each other at once cannot both see the other.
    Organization.objects.select_for_update().filter(pk=membership.organization_id).first()
    others = Membership.objects.filter(organization=membership.organization_id, role=Role.ADMIN).exclude(pk=membership.pk)
    if membership.role == Role.ADMIN and not others.exists():
        raise LastAdmin(f"{membership.user.get_username()} is the last admin of {membership.organization_id}")


def membership_change(*, membership: Membership, role: str) -> Membership:
    with transaction.atomic():
        membership = Membership.objects.select_for_update().select_related("user").get(pk=membership.pk)
        if role != Role.ADMIN:
            _keep_an_admin(membership)
        membership.role = Role(role)
        membership.save(update_fields=["role"])
    return membership


def membership_remove(*, membership: Membership) -> None:
    with transaction.atomic():
        membership = Membership.objects.select_for_update().select_related("user").get(pk=membership.pk)
        _keep_an_admin(membership)
        membership.delete()


# --- API keys --------------------------------------------------------------------------


def api_key_create(*, organization: Organization, created_by: AbstractBaseUser, name: str, scopes: list[str],
                   expires_at: datetime | None = None, agent_registration_id: str = "") -> tuple[ApiKey, str]:
    """(the stored key, the key itself). The key is not kept: this is the only time it exists in clear."""
    if not scopes or any(scope not in Scope.values for scope in scopes):
        raise AccountError(f"scopes must be a non-empty list of {', '.join(Scope.values)}")
    if expires_at is not None and expires_at <= timezone.now():
        raise AccountError("expires_at is in the past")
    role = Membership.objects.filter(user=created_by, organization=organization).values_list("role", flat=True).first()
    if role is None:
        raise ScopeAboveRole(f"{created_by.get_username()} is not in {organization.pk}")
    if Scope.WRITE in scopes and role == Role.VIEWER:
        raise ScopeAboveRole("a viewer's keys can only read: ask for scopes ['read']")
    raw, prefix = tokens.new_api_key()
    key = ApiKey.objects.create(organization=organization, created_by=created_by, name=name.strip() or prefix,
                                prefix=prefix, key_hash=tokens.secret_hash(raw), scopes=sorted(set(scopes)),
                                expires_at=expires_at, agent_registration_id=agent_registration_id or "")
    logger.info("api key created", extra={"organization_id": organization.id, "api_key_id": key.id})
    return key, raw


def api_key_revoke(*, key: ApiKey) -> None:
    if key.revoked_at is None:
        ApiKey.objects.filter(pk=key.pk, revoked_at__isnull=True).update(revoked_at=timezone.now())
    logger.info("api key revoked", extra={"organization_id": key.organization_id, "api_key_id": key.id})


# --- tokens ----------------------------------------------------------------------------


def token_pair_issue(*, user: AbstractBaseUser) -> dict[str, object]:
    """`{"access", "refresh", "expires_in"}` for a user who proved who they are."""
    refresh = tokens.new_refresh_token()
    record = RefreshToken.objects.create(
        user=user, token_hash=tokens.secret_hash(refresh), password_stamp=tokens.password_stamp(user),
        expires_at=timezone.now() + timedelta(seconds=settings.GUILDSITE_REFRESH_TOKEN_SECONDS))
    access, expires_in = tokens.access_token_encode(user=user, sign_in=record.pk)
    return {"access": access, "refresh": refresh, "expires_in": expires_in}


def _live_refresh(refresh: str) -> RefreshToken:
    record = (RefreshToken.objects.select_related("user").filter(token_hash=tokens.secret_hash(refresh)).first()
              if isinstance(refresh, str) and refresh.startswith(tokens.REFRESH_PREFIX) else None)
    if record is None:
        raise tokens.CredentialError("unknown refresh token")
    if record.revoked_at is not None:
        raise tokens.CredentialError("the refresh token was revoked (logged out): sign in again")
    if record.expires_at <= timezone.now():
        raise tokens.CredentialError("the refresh token has expired: sign in again")
    if not record.user.is_active:
        raise tokens.CredentialError("the account is disabled")
    if not tokens.stamp_matches(record.user, record.password_stamp):
        raise tokens.CredentialError("the password changed since this sign-in: sign in again")
    return record


def access_token_refresh(*, refresh: str) -> dict[str, object]:
    record = _live_refresh(refresh)
    access, expires_in = tokens.access_token_encode(user=record.user, sign_in=record.pk)
    return {"access": access, "expires_in": expires_in}


def signed_out(*, user_pk: int, sign_in: int) -> bool:
    """Whether the sign-in an access token came from was logged out (or is gone)."""
    return not RefreshToken.objects.filter(pk=sign_in, user_id=user_pk, revoked_at__isnull=True).exists()


def refresh_token_revoke(*, refresh: str) -> None:
    """Revoke a refresh token, and with it the access tokens issued from it (again is harmless); CredentialError
    for one that never existed."""
    record = RefreshToken.objects.filter(token_hash=tokens.secret_hash(refresh)).first()
    if record is None:
        raise tokens.CredentialError("unknown refresh token")
    RefreshToken.objects.filter(pk=record.pk, revoked_at__isnull=True).update(revoked_at=timezone.now())
