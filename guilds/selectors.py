"""Guild reads shared by views, consumers and the admin."""

from __future__ import annotations

from collections.abc import Iterable

from django.db.models import QuerySet

from guilds.models import Guild
from guildsite import permissions
from guildsite.identity import Actor


def guild_for(actor: Actor, guild_id: str) -> Guild:
    """The guild if the actor may see it; permissions.NotFound otherwise (whatever the reason)."""
    guild = Guild.objects.select_related("launched_by").filter(pk=guild_id).first()
    if guild is None:
        raise permissions.NotFound(f"Guild '{guild_id}' not found.")
    permissions.guild_read_check(actor, guild)
    return guild


def guild_list(
    *, actor: Actor, organization_id: str | None = None, user_id: str | None = None, statuses: Iterable[str] = ()
) -> QuerySet[Guild]:
    """Newest first, for GET /api/guilds: the guilds of the actor's organisations. Spec and state stay out:
    a list shows who, what and how it is doing."""
    guilds = permissions.guild_queryset(actor, Guild.objects.defer("spec", "state").select_related("launched_by"))
    if organization_id:
        guilds = guilds.filter(organization_id=organization_id)
    if user_id:
        guilds = guilds.filter(launched_by__username=user_id)
    statuses = list(statuses)
    if statuses:
        guilds = guilds.filter(status__in=statuses)
    return guilds


def guild_has_member(guild: Guild, username: str) -> bool:
    """Has this user joined the guild (or launched it)?"""
    return guild.members.filter(user__username=username).exists()
