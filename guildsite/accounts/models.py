"""Organisations, who belongs to them with which role, API keys and refresh tokens.

Users are Django's own. A user's id everywhere in the protocol is their username
(guildsite.accounts.names); an organisation's id is its slug.
"""

from __future__ import annotations

from django.conf import settings
from django.core.validators import RegexValidator
from django.db import models

from guildsite.accounts.names import ORGANIZATION_ID_PATTERN, ORGANIZATION_ID_RULE
from guildsite.public_ids import new_public_id


class Role(models.TextChoices):
    VIEWER = "viewer", "Viewer"
    MEMBER = "member", "Member"
    ADMIN = "admin", "Admin"


ROLE_RANK = {Role.VIEWER: 1, Role.MEMBER: 2, Role.ADMIN: 3}


def role_at_least(role: str | None, wanted: str) -> bool:
    return role is not None and ROLE_RANK[Role(role)] >= ROLE_RANK[Role(wanted)]


def lower_role(first: str | None, second: str | None) -> str | None:
    if first is None or second is None:
        return None
    return first if ROLE_RANK[Role(first)] <= ROLE_RANK[Role(second)] else second


class Organization(models.Model):
    id = models.CharField(primary_key=True, max_length=63,
                          validators=[RegexValidator(ORGANIZATION_ID_PATTERN, f"An organisation id is {ORGANIZATION_ID_RULE}.")])
    name = models.CharField(max_length=128)
    created_at = models.DateTimeField(auto_now_add=True)
    members = models.ManyToManyField(settings.AUTH_USER_MODEL, through="Membership", related_name="organizations")

    class Meta:
        ordering = ["id"]
        verbose_name = "organisation"

    def __str__(self) -> str:
        return self.name if self.name == self.id else f"{self.name} ({self.id})"


class Membership(models.Model):
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="memberships")
    organization = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="memberships")
    role = models.CharField(max_length=10, choices=Role.choices, default=Role.MEMBER)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["organization", "user__username"]
        constraints = [models.UniqueConstraint(fields=["user", "organization"], name="one_membership_per_user_and_org")]

    def __str__(self) -> str:
        return f"{self.user} in {self.organization_id} ({self.role})"


class Scope(models.TextChoices):
    READ = "read", "Read (acts as a viewer)"
    WRITE = "write", "Write (acts as a member)"


class ApiKey(models.Model):
    """A key for programs. Only its SHA-256 is stored; the key itself is shown once, at creation."""

    id = models.CharField(primary_key=True, max_length=32, default=new_public_id, editable=False)
    organization = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="api_keys")
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="api_keys")
    name = models.CharField(max_length=128)
    prefix = models.CharField(max_length=16, unique=True, help_text="The key's visible start, to tell keys apart.")
    key_hash = models.CharField(max_length=64, unique=True)
    scopes = models.JSONField(default=list)
    agent_registration_id = models.CharField(max_length=128, blank=True, default="",
                                             help_text="When set, only that external agent may use the key.")
    expires_at = models.DateTimeField(null=True, blank=True)
    last_used_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at"]
        verbose_name = "API key"

    def __str__(self) -> str:
        return f"{self.name} ({self.prefix}…)"


class RefreshToken(models.Model):
    """A refresh token: opaque, stored as its SHA-256, revoked by logout."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="refresh_tokens")
    token_hash = models.CharField(max_length=64, unique=True)
    # Of the password it was issued under (guildsite.accounts.tokens.password_stamp): a new password ends it.
    password_stamp = models.CharField(max_length=64)
    created_at = models.DateTimeField(auto_now_add=True)
    expires_at = models.DateTimeField()
    revoked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"refresh token of {self.user} ({'revoked' if self.revoked_at else 'active'})"
