"""Guild reads shared by views, consumers and the admin."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from decimal import Decimal
from typing import Any

from django.db.models import Count, Q, QuerySet, Sum

from guilds.models import (
    ExternalAgent,
    ExternalCommand,
    Guild,
    Run,
    Schedule,
    Thread,
    ThreadMessage,
    Trigger,
    Webhook,
    WebhookDelivery,
)
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


# --- threads and runs (LLM agents) ----------------------------------------------------------


def thread_list(*, actor: Actor, guild_id: str | None = None, agent_id: str | None = None) -> QuerySet[Thread]:
    """The actor's own threads, most recently active first."""
    threads = permissions.thread_queryset(actor, Thread.objects.all())
    if guild_id:
        threads = threads.filter(guild_id=guild_id)
    if agent_id:
        threads = threads.filter(agent_id=agent_id)
    return threads


def thread_for(actor: Actor, thread_id: str) -> Thread:
    """The actor's thread; permissions.NotFound for anyone else's, in any organisation."""
    thread = permissions.thread_queryset(actor, Thread.objects.select_related("guild")).filter(pk=thread_id).first()
    if thread is None:
        raise permissions.NotFound(f"Thread '{thread_id}' not found.")
    return thread


def thread_messages(thread: Thread) -> QuerySet[ThreadMessage]:
    """Oldest first (by row id: the order they were written in)."""
    return thread.messages.order_by("id")


def run_list(*, actor: Actor, guild_id: str | None = None, agent_id: str | None = None, statuses: Iterable[str] = (),
             triggers: Iterable[str] = (), since: datetime | None = None, until: datetime | None = None,
             message_id: int | None = None) -> QuerySet[Run]:
    """Newest first: the runs of the guilds the actor sees, filtered."""
    runs = permissions.run_queryset(actor, Run.objects.all())
    if guild_id:
        runs = runs.filter(guild_id=guild_id)
    if agent_id:
        runs = runs.filter(agent_id=agent_id)
    statuses, triggers = list(statuses), list(triggers)
    if statuses:
        runs = runs.filter(status__in=statuses)
    if triggers:
        runs = runs.filter(trigger__in=triggers)
    if since is not None:
        runs = runs.filter(created_at__gte=since)
    if until is not None:
        runs = runs.filter(created_at__lt=until)
    if message_id is not None:
        runs = runs.filter(message_id=message_id)
    return runs.order_by("-created_at", "-pk")


def run_totals(runs: QuerySet[Run]) -> dict[str, Any]:
    """Sums over every run of the filter (not one page). A sum is null when any run lacks its figure (a run
    still going, a model without a price): a partial sum would read as the whole, and unknown is never 0."""
    figures = ("input_tokens", "output_tokens", "cached_tokens", "cost_usd")
    found = runs.order_by().aggregate(
        runs=Count("pk"),
        **{f"sum_{name}": Sum(name) for name in figures},
        **{f"missing_{name}": Count("pk", filter=Q(**{f"{name}__isnull": True})) for name in figures},
    )
    totals: dict[str, Any] = {"runs": found["runs"]}
    for name in figures:
        total = found[f"sum_{name}"]
        if found[f"missing_{name}"]:
            total = None
        elif total is None:
            total = Decimal(0) if name == "cost_usd" else 0  # no runs at all: nothing is unknown
        totals[name] = total
    totals["runs_without_cost"] = found["missing_cost_usd"]
    return totals


def run_for(actor: Actor, run_id: str) -> Run:
    run = permissions.run_queryset(actor, Run.objects.select_related("guild", "thread")).filter(pk=run_id).first()
    if run is None:
        raise permissions.NotFound(f"Run '{run_id}' not found.")
    return run


# --- schedules ----------------------------------------------------------------------------------


def agent_ids_by_name(guild: Guild) -> dict[str, str]:
    """The guild's agents' ids by name (the first of a name, where a spec repeats one)."""
    names: dict[str, str] = {}
    for agent in (guild.spec or {}).get("agents") or []:
        if isinstance(agent, dict) and agent.get("name") and agent.get("id"):
            names.setdefault(agent["name"], agent["id"])
    return names


def schedule_list(guild: Guild) -> QuerySet[Schedule]:
    return guild.schedules.select_related("guild", "created_by").order_by("created_at", "pk")


def schedule_for(actor: Actor, schedule_id: str) -> Schedule:
    return _guild_owned(Schedule, "Schedule", actor, schedule_id)


def _guild_owned(model: type, label: str, actor: Actor, object_id: str) -> Any:
    """One of a guild's things (schedule, trigger, webhook) if the actor sees its guild; permissions.NotFound otherwise."""
    found = model.objects.select_related("guild", "created_by").filter(pk=object_id).first()
    if found is None:
        raise permissions.NotFound(f"{label} '{object_id}' not found.")
    try:
        permissions.guild_read_check(actor, found.guild)
    except permissions.NotFound:
        raise permissions.NotFound(f"{label} '{object_id}' not found.") from None
    return found


def trigger_list(guild: Guild) -> QuerySet[Trigger]:
    return guild.triggers.select_related("guild", "created_by").order_by("created_at", "pk")


def trigger_for(actor: Actor, trigger_id: str) -> Trigger:
    return _guild_owned(Trigger, "Trigger", actor, trigger_id)


def webhook_list(guild: Guild) -> QuerySet[Webhook]:
    return guild.webhooks.select_related("guild", "created_by").order_by("created_at", "pk")


def webhook_for(actor: Actor, webhook_id: str) -> Webhook:
    return _guild_owned(Webhook, "Webhook", actor, webhook_id)


def webhook_deliveries(webhook: Webhook) -> QuerySet[WebhookDelivery]:
    return webhook.deliveries.order_by("-created_at", "-pk")


def delivery_for(actor: Actor, delivery_id: str) -> WebhookDelivery:
    """The delivery if the actor sees its webhook's guild; permissions.NotFound otherwise."""
    delivery = WebhookDelivery.objects.select_related("webhook__guild").filter(pk=delivery_id).first()
    if delivery is None:
        raise permissions.NotFound(f"Delivery '{delivery_id}' not found.")
    try:
        permissions.guild_read_check(actor, delivery.webhook.guild)
    except permissions.NotFound:
        raise permissions.NotFound(f"Delivery '{delivery_id}' not found.") from None
    return delivery


def external_agent_list(actor: Actor) -> QuerySet[ExternalAgent]:
    agents = ExternalAgent.objects.select_related("created_by").order_by("created_at", "pk")
    visible = permissions.visible_organization_ids(actor)
    return agents if visible is None else agents.filter(organization_id__in=visible)


def external_agent_for(actor: Actor, agent_id: str) -> ExternalAgent:
    """The external agent if the actor sees its organisation; permissions.NotFound otherwise (either way alike)."""
    agent = ExternalAgent.objects.select_related("created_by").filter(pk=agent_id).first()
    if agent is None:
        raise permissions.NotFound(f"External agent '{agent_id}' not found.")
    try:
        permissions.external_agent_read_check(actor, agent.organization_id)
    except permissions.NotFound:
        raise permissions.NotFound(f"External agent '{agent_id}' not found.") from None
    return agent


def external_command_for(actor: Actor, command_id: str) -> ExternalCommand:
    command = ExternalCommand.objects.select_related("agent", "created_by").filter(pk=command_id).first()
    if command is None:
        raise permissions.NotFound(f"Command '{command_id}' not found.")
    try:
        permissions.external_agent_read_check(actor, command.agent.organization_id)
    except permissions.NotFound:
        raise permissions.NotFound(f"Command '{command_id}' not found.") from None
    return command
