"""The dashboard's pages. They read through the selectors and the permission layer like the API does;
their buttons call the REST API (guilds.api, catalog.api) and follow `/api/ws`, so a page can do only
what its viewer could do with curl."""

from __future__ import annotations

import functools
import time
import zoneinfo
from datetime import tzinfo
from urllib.parse import unquote

from django.conf import settings
from django.contrib.auth.views import redirect_to_login
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.csrf import ensure_csrf_cookie

from catalog.models import Blueprint
from guilds.dashboard import selectors as board
from guilds.external import commands, presence
from guilds.models import AgentKind, DeadLetter, ExternalAgent, ExternalCommand, ExternalSeat, Guild, GuildFile
from guilds.queue_depth import queue_depths
from guilds.selectors import guild_for, schedule_list, trigger_list, webhook_list
from guildsite import permissions
from guildsite.accounts.models import Organization, Role, role_at_least
from guildsite.identity import Actor, actor_of
from guildsite.page_policy import strict_page

TIME_ZONE_COOKIE = "tz"  # the browser's IANA zone, set by dashboard.js: "today" is the viewer's day
DELIVERIES_SHOWN = 20
STATUS_CHANGES_SHOWN = 20
COMMANDS_SHOWN = 20
DEAD_LETTERS_SHOWN = 100
PARTICIPANTS_SHOWN = 200
FILES_SHOWN = 200


@functools.cache
def _zone_names() -> frozenset[str]:
    return frozenset(zoneinfo.available_timezones())


def viewer_zone(request: HttpRequest) -> tzinfo:
    """The zone the browser says it is in (an IANA name; anything else, or nothing: UTC)."""
    name = unquote(request.COOKIES.get(TIME_ZONE_COOKIE, "")[:100])
    return zoneinfo.ZoneInfo(name if name in _zone_names() else "UTC")


def _page_actor(request: HttpRequest) -> Actor | None:
    """The viewer; None when they must sign in first (authentication on, no session)."""
    actor = actor_of(request)
    if actor.user is None and not actor.development:
        return None
    return actor


def _organizations(actor: Actor) -> list[Organization]:
    """The viewer's organisations; in development without a sign-in, every one that exists."""
    organizations = Organization.objects.order_by("name", "pk")
    if permissions.sees_every_organization(actor):
        return list(organizations)
    return list(organizations.filter(pk__in=list(permissions.roles(actor))))


def _sign_in(request: HttpRequest) -> HttpResponse:
    return redirect_to_login(request.get_full_path())


def home(request: HttpRequest) -> HttpResponse:
    if _page_actor(request) is None:
        return _sign_in(request)
    return redirect("dashboard")


def _common(request: HttpRequest, actor: Actor) -> dict:
    return {"auth_disabled": settings.AUTH_DISABLED, "signed_in": actor.user is not None}


@strict_page
@ensure_csrf_cookie  # the page's API calls send the CSRF token with the session cookie
def dashboard(request: HttpRequest) -> HttpResponse:
    started = time.perf_counter()
    actor = _page_actor(request)
    if actor is None:
        return _sign_in(request)
    organizations = _organizations(actor)
    chosen = request.GET.get("org", "")
    organization = next((o for o in organizations if o.pk == chosen), organizations[0] if organizations else None)
    if chosen and (organization is None or organization.pk != chosen):
        raise Http404("No such organisation.")
    context = {**_common(request, actor), "chat_url": reverse("chat"), "organizations": organizations,
               "organization": organization,
               "guilds": [], "blueprints": [], "external_agents": []}
    if organization is not None:
        zone = viewer_zone(request)
        guilds = board.dashboard_guilds(actor=actor, organization_id=organization.pk, zone=zone)
        _add_page_urls(guilds)
        _add_queue_depths(guilds)
        can_send = _can_send(actor, organization.pk)
        context.update(
            guilds=guilds, zone=getattr(zone, "key", "UTC"), can_launch=can_send, can_send=can_send,
            status_counts=board.counts_by_status(guilds),
            blueprints=list(permissions.blueprint_queryset(actor, Blueprint.objects.all())
                            .only("id", "name", "version").order_by("name", "version")) if can_send else [],
            external_agents=_external_agents(ExternalAgent.objects.filter(organization=organization)),
        )
    with timezone.override(viewer_zone(request)):  # the page's times in the viewer's zone
        response = render(request, "dashboard/index.html", context)
    # The server's share of the page's time, in the browser's network panel and for `make bench`.
    response["Server-Timing"] = f"render;dur={(time.perf_counter() - started) * 1000:.1f}"
    return response


def _can_send(actor: Actor, organization_id: str | None) -> bool:
    """Launching and messaging an agent: a member of the organisation (REST checks each call again)."""
    return role_at_least(permissions.organization_role(actor, organization_id), Role.MEMBER)


def _external_agents(agents) -> list[tuple[ExternalAgent, str]]:
    """Each with its status as REST says it (offline once its heartbeats stopped, whatever its row says)."""
    return [(agent, presence.effective_status(agent)) for agent in agents.order_by("name", "pk")]


def _add_page_urls(guilds: list[board.GuildRow]) -> None:
    pattern = reverse("dashboard-guild", args=["GUILD_ID"])
    for guild in guilds:
        guild.page_url = pattern.replace("GUILD_ID", guild.id)


def _add_queue_depths(guilds: list[board.GuildRow]) -> None:
    """One call for the page; a stopped guild's agents have nothing waiting, an unanswered one is unknown."""
    depths = queue_depths([(guild.id, agent.agent_id) for guild in guilds if guild.active for agent in guild.agents])
    for guild in guilds:
        if guild.active:
            for agent in guild.agents:
                agent.queue_depth = depths.get((guild.id, agent.agent_id))


@strict_page
def guild_agents(request: HttpRequest, guild_id: str) -> HttpResponse:
    """The rows of a guild's agents, fetched when the dashboard expands it (a page of 1,000 agent rows would take
    Django's templates a third of a second to render)."""
    actor, guild = _fragment_guild(request, guild_id)
    zone = viewer_zone(request)
    rows = board.dashboard_guilds(actor=actor, organization_id=guild.organization_id, zone=zone, guild_id=guild.pk)
    if not rows:
        raise Http404("No such guild.")
    _add_queue_depths(rows)
    _add_page_urls(rows)
    with timezone.override(zone):
        return render(request, "dashboard/_agent_rows.html",
                      {"guild": rows[0], "can_send": _can_send(actor, guild.organization_id)})


@strict_page
def guild_timeline(request: HttpRequest, guild_id: str) -> HttpResponse:
    """The guild page's health timeline, fetched again when a move is heard (or may have been missed)."""
    _, guild = _fragment_guild(request, guild_id)
    with timezone.override(viewer_zone(request)):
        return render(request, "dashboard/_timeline.html", {"status_changes": _status_changes(guild)})


def _fragment_guild(request: HttpRequest, guild_id: str) -> tuple[Actor, Guild]:
    """Who asks for a piece of a guild's page, and the guild: 404 to anyone who may not see it (signed out too)."""
    actor = _page_actor(request)
    if actor is None:
        raise Http404("No such guild.")
    try:
        return actor, guild_for(actor, guild_id)
    except permissions.NotFound:
        raise Http404("No such guild.") from None


def _status_changes(guild) -> list:
    return list(guild.status_changes.order_by("-at", "-id")[:STATUS_CHANGES_SHOWN])


@strict_page
@ensure_csrf_cookie
def guild_page(request: HttpRequest, guild_id: str) -> HttpResponse:
    actor = _page_actor(request)
    if actor is None:
        return _sign_in(request)
    try:
        guild = guild_for(actor, guild_id)
    except permissions.NotFound:
        raise Http404("No such guild.") from None
    controls = _allowed(permissions.guild_control_check, actor, guild, doing="managing this guild")
    browses = _allowed(permissions.guild_messages_browse_check, actor, guild)
    sees_files = _allowed(permissions.guild_files_check, actor, guild)
    agents = list(guild.agents.exclude(kind=AgentKind.HUMAN).order_by("created_at"))
    seats = {seat.seat_id: seat.agent for seat in ExternalSeat.objects.filter(guild=guild).select_related("agent")}
    external = list({agent.pk: agent for agent in seats.values()}.values())
    for agent in external:
        commands.commands_expire(agent.pk)  # as REST does before it reads them
    context = {
        **_common(request, actor), "guild": guild, "controls": controls, "browses": browses, "sees_files": sees_files,
        "organization": guild.organization,
        # A seat's status is its external agent's presence (as REST says it).
        "agents": [(agent, board.agent_kind(agent.class_name), seats.get(agent.agent_id),
                    presence.effective_status(seats[agent.agent_id]) if agent.agent_id in seats else agent.status)
                   for agent in agents],
        "status_changes": _status_changes(guild),
        "participants": list(guild.members.select_related("user").order_by("joined_at")[:PARTICIPANTS_SHOWN]),
        "schedules": list(schedule_list(guild)),
        "external_agents": [(agent, presence.effective_status(agent)) for agent in external],
        "commands": list(ExternalCommand.objects.filter(agent__in=[a.pk for a in external])
                         .select_related("agent").order_by("-created_at")[:COMMANDS_SHOWN]) if external else [],
        "dead_letters": list(DeadLetter.objects.filter(guild=guild).order_by("-failed_at")[:DEAD_LETTERS_SHOWN])
        if controls else [],
        "triggers": list(trigger_list(guild)) if controls else [],
        "webhooks": [(hook, list(hook.deliveries.order_by("-created_at")[:DELIVERIES_SHOWN]))
                     for hook in webhook_list(guild)] if controls else [],
        "files": list(GuildFile.objects.filter(guild=guild).order_by("-created_at")[:FILES_SHOWN]) if sees_files else [],
    }
    with timezone.override(viewer_zone(request)):
        return render(request, "dashboard/guild.html", context)


def _allowed(check, *args, **kwargs) -> bool:
    try:
        check(*args, **kwargs)
    except permissions.PermissionProblem:
        return False
    return True
