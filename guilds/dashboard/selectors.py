"""What the dashboard shows, read in a fixed number of queries however many guilds and agents there are.

One query each for the guilds, their agents (with each agent's last run), run totals, schedules, dead
letters and external seats; the queue depths come from the engine in one call. A page of 200 guilds
and 1,000 agents costs what a page of one does (tests/dashboard/test_dashboard_queries.py).
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timedelta, tzinfo
from decimal import Decimal

from django.db.models import Count, IntegerField, OuterRef, Q, Subquery, Sum
from django.db.models.functions import Coalesce
from django.utils import timezone

from guilds.agents.llm import LLMAgent
from guilds.external import presence
from guilds.external.registry import EXTERNAL_CLASS
from guilds.models import AgentKind, DeadLetter, ExternalSeat, Guild, GuildAgent, Run, Schedule
from guilds.runtime.registry import agent_class_or_none, canonical_class_name
from guildsite import permissions
from guildsite.identity import Actor

ACTIVE_STATUSES = frozenset({"REQUESTED", "PENDING_LAUNCH", "STARTING", "RUNNING", "WARNING"})
# A relaunch starts agents that are gone (ERROR, or an agent lost in WARNING); a STOPPED guild stays stopped.
RELAUNCHABLE_STATUSES = frozenset({"ERROR", "WARNING"})


@dataclass
class Totals:
    runs: int = 0
    tokens: int = 0
    cost_usd: Decimal = Decimal(0)
    unpriced: int = 0  # runs that used tokens but have no cost (a model without a price): the cost is at least

    def add(self, other: Totals) -> None:
        self.runs += other.runs
        self.tokens += other.tokens
        self.cost_usd += other.cost_usd
        self.unpriced += other.unpriced


@dataclass
class AgentRow:
    agent_id: str
    name: str
    kind: str  # built-in, llm, external
    class_name: str
    status: str
    status_detail: str
    last_run_id: str | None = None
    last_run_status: str | None = None
    last_run_at: datetime | None = None
    today: Totals = field(default_factory=Totals)
    week: Totals = field(default_factory=Totals)
    schedule_id: str | None = None
    schedule_enabled: bool | None = None
    next_run_at: datetime | None = None
    queue_depth: int | None = 0  # None: the engine could not be asked (shown as unknown)
    dead_letters: int = 0
    external_agent_id: str | None = None


@dataclass
class GuildRow:
    id: str
    name: str
    status: str
    status_detail: str
    blueprint_name: str
    launched_by: str
    created_at: datetime
    manageable: bool  # the viewer may stop it and read its dead letters (REST's guild_control_check)
    agents: list[AgentRow] = field(default_factory=list)
    dead_letters: int = 0  # the guild's, its manager's and users' proxies' included
    next_run_at: datetime | None = None  # its soonest enabled schedule, to an agent or into its routes
    page_url: str = ""  # set by the view (reversed once for the page, not per row)
    today: Totals = field(default_factory=Totals)
    week: Totals = field(default_factory=Totals)

    @property
    def active(self) -> bool:
        return self.status in ACTIVE_STATUSES

    @property
    def search_text(self) -> str:
        """What the page's search matches: the guild's names and ids, its agents' names, ids and kinds."""
        words = [self.name, self.id, self.blueprint_name, self.launched_by]
        for agent in self.agents:
            words += [agent.name, agent.agent_id, agent.kind]
        return " ".join(words).lower()

    @property
    def relaunchable(self) -> bool:
        return self.status in RELAUNCHABLE_STATUSES

    @property
    def queue_depth(self) -> int | None:
        """None when an agent's could not be asked: a partial sum would read as the whole."""
        depths = [agent.queue_depth for agent in self.agents]
        return None if None in depths else sum(depths)

    @property
    def last_run(self) -> AgentRow | None:
        ran = [agent for agent in self.agents if agent.last_run_at]
        return max(ran, key=lambda agent: agent.last_run_at) if ran else None


def agent_kind(class_name: str) -> str:
    if canonical_class_name(class_name) == EXTERNAL_CLASS:
        return "external"
    found = agent_class_or_none(class_name)
    return "llm" if found is not None and issubclass(found, LLMAgent) else "built-in"  # subclasses too


def day_start(now: datetime, zone: tzinfo) -> datetime:
    """Midnight of today where the viewer is."""
    local = now.astimezone(zone)
    return local.replace(hour=0, minute=0, second=0, microsecond=0)


def dashboard_guilds(*, actor: Actor, organization_id: str | None, zone: tzinfo, now: datetime | None = None,
                     guild_id: str | None = None) -> list[GuildRow]:
    """The organisation's guilds (newest first; or the one `guild_id` names) with their agents, as far as the actor
    sees them."""
    now = now or timezone.now()
    guilds = permissions.guild_queryset(actor, Guild.objects.filter(organization_id=organization_id))
    if guild_id is not None:
        guilds = guilds.filter(pk=guild_id)
    guild_list = list(guilds.select_related("blueprint", "launched_by")
                      .only("id", "name", "status", "status_detail", "created_at", "organization_id", "blueprint__name",
                            "launched_by__username").order_by("-created_at"))
    rows = {guild.pk: GuildRow(id=guild.pk, name=guild.name, status=guild.status, status_detail=guild.status_detail,
                               blueprint_name=guild.blueprint.name if guild.blueprint else "",
                               launched_by=guild.launched_by.get_username() if guild.launched_by else "",
                               created_at=guild.created_at, manageable=_manageable(actor, guild))
            for guild in guild_list}
    if not rows:
        return []
    in_these = Q(guild__organization_id=organization_id, guild_id__in=guilds.values("pk"))
    agents = _agents(in_these)
    _add_run_totals(agents, in_these, today=day_start(now, zone), week=now - timedelta(days=7))
    _add_schedules(rows, agents, in_these)
    _add_dead_letters(rows, agents, in_these)
    _add_external_seats(agents, in_these)
    for (guild_id, _), agent in agents.items():
        row = rows[guild_id]
        row.agents.append(agent)
        row.today.add(agent.today)
        row.week.add(agent.week)
    return list(rows.values())


def _manageable(actor: Actor, guild: Guild) -> bool:
    try:
        permissions.guild_control_check(actor, guild, doing="managing a guild")  # roles are read once per actor
    except permissions.PermissionProblem:
        return False
    return True


def _agents(in_these: Q) -> dict[tuple[str, str], AgentRow]:
    last_run = (Run.objects.filter(guild_id=OuterRef("guild_id"), agent_id=OuterRef("agent_id"))
                .order_by("-created_at", "-pk"))
    records = (GuildAgent.objects.filter(in_these).exclude(kind=AgentKind.HUMAN).exclude(kind=AgentKind.SYSTEM)
               .annotate(last_run_id=Subquery(last_run.values("id")[:1]),
                         last_run_status=Subquery(last_run.values("status")[:1]),
                         last_run_at=Subquery(last_run.values("created_at")[:1]))
               .values_list("guild_id", "agent_id", "name", "class_name", "status", "status_detail",
                            "last_run_id", "last_run_status", "last_run_at")
               .order_by("guild_id", "created_at"))
    return {(guild_id, agent_id): AgentRow(agent_id=agent_id, name=name, kind=agent_kind(class_name),
                                           class_name=class_name, status=status, status_detail=detail,
                                           last_run_id=run_id, last_run_status=run_status, last_run_at=run_at)
            for guild_id, agent_id, name, class_name, status, detail, run_id, run_status, run_at in records}


def _add_run_totals(agents: dict[tuple[str, str], AgentRow], in_these: Q, *, today: datetime, week: datetime) -> None:
    tokens = Coalesce("input_tokens", 0) + Coalesce("output_tokens", 0)
    zero = Decimal(0)
    since = min(today, week)
    unpriced = Q(cost_usd__isnull=True) & (Q(input_tokens__isnull=False) | Q(output_tokens__isnull=False))
    totals = (Run.objects.filter(in_these, created_at__gte=since).values("guild_id", "agent_id")
              .annotate(week_runs=Count("id", filter=Q(created_at__gte=week)),
                        week_tokens=Coalesce(Sum(tokens, filter=Q(created_at__gte=week), output_field=IntegerField()), 0),
                        week_cost=Sum("cost_usd", filter=Q(created_at__gte=week)),
                        today_runs=Count("id", filter=Q(created_at__gte=today)),
                        today_tokens=Coalesce(Sum(tokens, filter=Q(created_at__gte=today), output_field=IntegerField()), 0),
                        today_cost=Sum("cost_usd", filter=Q(created_at__gte=today)),
                        week_unpriced=Count("id", filter=Q(created_at__gte=week) & unpriced),
                        today_unpriced=Count("id", filter=Q(created_at__gte=today) & unpriced))
              .order_by())
    for total in totals:
        agent = agents.get((total["guild_id"], total["agent_id"]))
        if agent is None:
            continue
        agent.week = Totals(total["week_runs"], total["week_tokens"], total["week_cost"] or zero, total["week_unpriced"])
        agent.today = Totals(total["today_runs"], total["today_tokens"], total["today_cost"] or zero,
                             total["today_unpriced"])


def _add_schedules(rows: dict[str, GuildRow], agents: dict[tuple[str, str], AgentRow], in_these: Q) -> None:
    """An agent's schedule is the first made for it; its next firing (and its guild's) the soonest enabled one."""
    schedules = (Schedule.objects.filter(in_these)
                 .values_list("id", "guild_id", "agent_id", "enabled", "next_run_at").order_by("created_at", "pk"))
    for schedule_id, guild_id, agent_id, enabled, next_run_at in schedules:
        due = next_run_at if enabled else None
        guild = rows[guild_id]
        if due and (guild.next_run_at is None or due < guild.next_run_at):
            guild.next_run_at = due
        agent = agents.get((guild_id, agent_id)) if agent_id else None
        if agent is None:
            continue
        if agent.schedule_id is None:
            agent.schedule_id, agent.schedule_enabled = schedule_id, enabled
        if due and (agent.next_run_at is None or due < agent.next_run_at):
            agent.next_run_at = due


def _add_dead_letters(rows: dict[str, GuildRow], agents: dict[tuple[str, str], AgentRow], in_these: Q) -> None:
    counts = DeadLetter.objects.filter(in_these).values("guild_id", "agent_id").annotate(n=Count("id")).order_by()
    for count in counts:
        rows[count["guild_id"]].dead_letters += count["n"]
        agent = agents.get((count["guild_id"], count["agent_id"]))
        if agent is not None:
            agent.dead_letters = count["n"]


def _add_external_seats(agents: dict[tuple[str, str], AgentRow], in_these: Q) -> None:
    """A seat's row says how its external agent is (online, busy, offline: as REST says it)."""
    for seat in ExternalSeat.objects.filter(in_these).select_related("agent"):
        agent = agents.get((seat.guild_id, seat.seat_id))
        if agent is not None:
            agent.external_agent_id = seat.agent_id
            agent.status = presence.effective_status(seat.agent)
            agent.status_detail = "" if agent.status != "offline" else presence.offline_reason(seat.agent)


def counts_by_status(rows: list[GuildRow]) -> dict[str, int]:
    counts: dict[str, int] = defaultdict(int)
    for row in rows:
        counts[row.status] += 1
    return dict(counts)
