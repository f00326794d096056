"""Turning the free-text user and organisation ids stored before accounts existed into rows.

Called by the catalog's and guilds' data migrations with the migration's historical `apps`, so it
works on the models as they were at that point. Names that break today's rules are cleaned
(guildsite.accounts.names); the first user recorded for a new organisation becomes its admin.
"""

from __future__ import annotations

from typing import Any

from django.contrib.auth.hashers import make_password

from guildsite.accounts.names import is_organization_id, organization_slug, user_id_from


class LegacyOwners:
    def __init__(self, apps: Any) -> None:
        self.users = apps.get_model("auth", "User")
        self.organizations = apps.get_model("accounts", "Organization")
        self.memberships = apps.get_model("accounts", "Membership")

    def user(self, legacy_id: str) -> Any | None:
        if not legacy_id or not legacy_id.strip():
            return None
        username = user_id_from(legacy_id)
        user, _ = self.users.objects.get_or_create(username=username, defaults={"password": make_password(None)})
        return user

    def organization(self, legacy_id: str, user: Any | None) -> Any | None:
        if not legacy_id or not legacy_id.strip():
            return None
        slug = legacy_id if is_organization_id(legacy_id) else organization_slug(legacy_id)
        organization, created = self.organizations.objects.get_or_create(id=slug, defaults={"name": legacy_id.strip()})
        if user is not None:
            self.memberships.objects.get_or_create(user=user, organization=organization,
                                                   defaults={"role": "admin" if created else "member"})
        return organization
