"""Guild reads shared by views, consumers and the admin."""

from __future__ import annotations

from collections.abc import Iterable

from django.db.models import QuerySet

from guilds.models import Guild


def guild_get(guild_id: str) -> Guild | None:
    return Guild.objects.filter(pk=guild_id).first()


async def aguild_get(guild_id: str) -> Guild | None:
    return await Guild.objects.filter(pk=guild_id).afirst()


def guild_list(
    *, organization_id: str | None = None, user_id: str | None = None, statuses: Iterable[str] = ()
) -> QuerySet[Guild]:
    """Newest first, for GET /api/guilds. Spec and state stay out: a list shows who, what and how it is doing."""
    guilds = Guild.objects.defer("spec", "state")
    if organization_id:
        guilds = guilds.filter(organization_id=organization_id)
    if user_id:
        guilds = guilds.filter(user_id=user_id)
    statuses = list(statuses)
    if statuses:
        guilds = guilds.filter(status__in=statuses)
    return guilds


def guild_members(guild: Guild) -> set[str]:
    """Who belongs to a guild: whoever launched it, and every user who joined it (has a proxy)."""
    from guilds.models import AgentKind, GuildAgent

    joined = GuildAgent.objects.filter(guild=guild, kind=AgentKind.HUMAN).values_list("spec", flat=True)
    return ({guild.user_id} | {spec.get("properties", {}).get("user_id") for spec in joined}) - {None, ""}
