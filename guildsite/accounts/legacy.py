"""Turning the free-text user and organisation ids stored before accounts existed into rows.

One data migration (guilds 0004) calls `owners_from_legacy_ids` with its historical `apps`, for
blueprints and guilds together, so one legacy id maps to one row in both. Ids that already follow
today's rules (guildsite.accounts.names) keep their name; others are cleaned, and a cleaned name that
is taken gets `-2`, `-3`…, so two different legacy ids never merge into one account or organisation.
The first user recorded for an organisation (blueprint authors first, then launchers, oldest first)
becomes its admin, other authors and launchers members, and users who only joined a guild there
viewers (before accounts, anyone could join any guild).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from django.contrib.auth.hashers import make_password

from guildsite.accounts.names import is_organization_id, is_user_id, organization_slug, user_id_from


def _names(raws: Iterable[str], *, valid: Callable[[str], bool], clean: Callable[[str], str], taken: set[str],
           limit: int) -> dict[str, str]:
    """legacy id -> the name its row gets: valid ids first as they are, then the cleaned ones, each distinct."""
    raws = sorted({raw for raw in raws if raw and raw.strip()})  # "acme " and "acme" were two ids: two rows
    chosen = {raw: raw for raw in raws if valid(raw)}
    taken = taken | set(chosen.values())
    for raw in raws:
        if raw in chosen:
            continue
        base, name, n = clean(raw), clean(raw), 1
        while name in taken:
            n += 1
            name = f"{base[: limit - len(str(n)) - 1]}-{n}"
        chosen[raw] = name
        taken.add(name)
    return chosen


def owners_from_legacy_ids(apps: Any) -> None:
    users = apps.get_model("auth", "User")
    organizations = apps.get_model("accounts", "Organization")
    memberships = apps.get_model("accounts", "Membership")
    blueprints = list(apps.get_model("catalog", "Blueprint").objects.order_by("created_at", "pk"))
    guilds = list(apps.get_model("guilds", "Guild").objects.order_by("created_at", "pk"))
    proxies = apps.get_model("guilds", "GuildAgent").objects.filter(kind="human")
    members = apps.get_model("guilds", "GuildMember")

    joined = {guild.pk: [str((p.spec.get("properties") or {}).get("user_id") or "") for p in proxies.filter(guild=guild)]
              for guild in guilds}
    usernames = _names([b.legacy_author for b in blueprints] + [g.legacy_user for g in guilds]
                       + [u for names in joined.values() for u in names],
                       valid=is_user_id, clean=user_id_from, limit=128,
                       taken=set(users.objects.values_list("username", flat=True)))
    org_ids = _names([b.legacy_organization for b in blueprints] + [g.legacy_organization for g in guilds],
                     valid=is_organization_id, clean=organization_slug, limit=63,
                     taken=set(organizations.objects.values_list("pk", flat=True)))

    def user(raw: str) -> Any | None:
        if not raw or not raw.strip():
            return None
        return users.objects.get_or_create(username=usernames[raw], defaults={"password": make_password(None)})[0]

    def organization(raw: str, first_user: Any | None) -> Any | None:
        if not raw or not raw.strip():
            return None
        found, created = organizations.objects.get_or_create(id=org_ids[raw], defaults={"name": raw.strip()})
        if first_user is not None:
            memberships.objects.get_or_create(user=first_user, organization=found,
                                              defaults={"role": "admin" if created else "member"})
        return found

    for blueprint in blueprints:
        blueprint.author = user(blueprint.legacy_author)
        blueprint.organization = organization(blueprint.legacy_organization, blueprint.author)
        blueprint.save(update_fields=["author", "organization"])
    for guild in guilds:
        guild.launched_by = user(guild.legacy_user)
        guild.organization = organization(guild.legacy_organization, guild.launched_by)
        guild.save(update_fields=["launched_by", "organization"])
        joiners = {u.pk: u for u in map(user, joined[guild.pk]) if u is not None}
        for person in {**joiners, **({guild.launched_by.pk: guild.launched_by} if guild.launched_by else {})}.values():
            members.objects.get_or_create(guild=guild, user=person)
        # Anyone could join any guild before accounts: a joiner only watches the organisation (viewer).
        for person in joiners.values():
            if guild.organization is not None:
                memberships.objects.get_or_create(user=person, organization=guild.organization,
                                                  defaults={"role": "viewer"})


def legacy_ids_from_owners(apps: Any) -> None:
    """Backwards: the rows' names into the legacy columns."""
    for blueprint in apps.get_model("catalog", "Blueprint").objects.select_related("author"):
        blueprint.legacy_author = blueprint.author.username if blueprint.author else ""
        blueprint.legacy_organization = blueprint.organization_id or ""
        blueprint.save(update_fields=["legacy_author", "legacy_organization"])
    for guild in apps.get_model("guilds", "Guild").objects.select_related("launched_by"):
        guild.legacy_user = guild.launched_by.username if guild.launched_by else ""
        guild.legacy_organization = guild.organization_id or ""
        guild.save(update_fields=["legacy_user", "legacy_organization"])
