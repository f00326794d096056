"""What the runs pages show: the filter read from a query string, a page of runs, figures per day, and one run's
conversation with its tool calls. The runs are selectors.run_list's (the REST API's filter and permission rules),
so a page shows what GET /api/runs shows the same viewer. The list page costs the same queries for 5 runs as
for 5,000: a page of rows, and one aggregate for the charts and the totals."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta, tzinfo
from decimal import Decimal
from typing import Any

from django.db.models import Count, Q, QuerySet, Sum
from django.db.models.functions import TruncDate
from django.http import QueryDict
from django.utils import timezone

from guilds import selectors
from guilds.models import Guild, Run, RunStatus, RunTrigger, ThreadMessage
from guildsite import permissions
from guildsite.identity import Actor

PAGE_SIZE = 50
PAGES_MAX = 1000  # an "older" link that far back is a crawler's, not a reader's
GUILDS_LISTED = 500  # the guild select's options (a guild beyond them still filters by its id)
VALUE_MAX_CHARS = 128  # an id or a name: longer is not one
RANGES = {"24h": timedelta(hours=24), "7d": timedelta(days=7), "30d": timedelta(days=30), "90d": timedelta(days=90)}
RANGE_LABELS = {"24h": "Last 24 hours", "7d": "Last 7 days", "30d": "Last 30 days", "90d": "Last 90 days"}
DEFAULT_RANGE = "7d"  # the charts need a bounded range; a page with every run ever would draw a year of bars
DAYS_MAX = 366  # a custom range's longest span
RUN_MESSAGES_MAX = 200  # as GET /api/runs/{id}
ID_SHAPE = re.compile(r"^[\w.:@+-]+$")


@dataclass
class RunFilter:
    guild_id: str = ""
    agent_id: str = ""
    statuses: list[str] = field(default_factory=list)
    triggers: list[str] = field(default_factory=list)
    range: str = DEFAULT_RANGE  # a RANGES key, or "custom" (from/to)
    day_from: date | None = None
    day_to: date | None = None
    page: int = 1
    notes: list[str] = field(default_factory=list)  # what was ignored, and why: shown above the list

    def window(self, now: datetime, zone: tzinfo) -> tuple[datetime, datetime]:
        """[since, until): a custom range is whole days in the viewer's zone, `to` included."""
        if self.range == "custom" and self.day_from and self.day_to:
            since = datetime.combine(self.day_from, time.min, tzinfo=zone)
            return since, datetime.combine(self.day_to + timedelta(days=1), time.min, tzinfo=zone)
        return now - RANGES[self.range], now

    def query(self, **changes: Any) -> str:
        """This filter as a query string (with `changes`), for the "older" link."""
        values = QueryDict(mutable=True)
        for name, value in (("guild", self.guild_id), ("agent", self.agent_id)):
            if value:
                values[name] = value
        values.setlist("status", self.statuses)
        values.setlist("trigger", self.triggers)
        if self.range == "custom":
            values["from"], values["to"] = self.day_from.isoformat(), self.day_to.isoformat()
        else:
            values["range"] = self.range
        for name, value in changes.items():
            values[name] = str(value)
        return values.urlencode()


def _an_id(params: QueryDict, name: str, label: str, notes: list[str]) -> str:
    raw = params.get(name, "").strip()
    if raw and (len(raw) > VALUE_MAX_CHARS or not ID_SHAPE.match(raw)):
        notes.append(f"Ignored the {label}: not an id.")
        return ""
    return raw


def _choices(params: QueryDict, name: str, valid: list[str], notes: list[str]) -> list[str]:
    wanted = [part.strip().lower() for value in params.getlist(name)[:20] for part in value[:VALUE_MAX_CHARS].split(",")
              if part.strip()]
    unknown = [value for value in wanted if value not in valid]
    if unknown:
        notes.append(f"Ignored the {name} {', '.join(repr(v[:40]) for v in unknown[:5])}: one of {', '.join(valid)}.")
    return list(dict.fromkeys(value for value in wanted if value in valid))


def _day(params: QueryDict, name: str, notes: list[str]) -> date | None:
    raw = params.get(name, "").strip()
    if not raw:
        return None
    try:
        if len(raw) == 10:
            return date.fromisoformat(raw)
    except ValueError:
        pass
    notes.append(f"Ignored the date {raw[:20]!r}: a day is written 2026-12-06.")
    return None


def run_filter_parse(params: QueryDict) -> RunFilter:
    """The filter in the page's query string. A bad value is dropped with a note the page shows (the rest of
    the filter still applies): a typo in a bookmarked address should not cost the reader the whole page."""
    notes: list[str] = []
    found = RunFilter(guild_id=_an_id(params, "guild", "guild", notes), agent_id=_an_id(params, "agent", "agent", notes),
                      statuses=_choices(params, "status", RunStatus.values, notes),
                      triggers=_choices(params, "trigger", RunTrigger.values, notes), notes=notes)
    chosen = params.get("range", "")[:10]
    # Dates typed in the form win over the range select (which always sends a value): they are what was asked.
    day_from, day_to = _day(params, "from", notes), _day(params, "to", notes)
    if day_from or day_to:
        day_from, day_to = day_from or day_to, day_to or day_from
        if day_to < day_from:
            day_from, day_to = day_to, day_from
        if (day_to - day_from).days >= DAYS_MAX:
            notes.append(f"Shortened the range to {DAYS_MAX} days.")
            day_from = day_to - timedelta(days=DAYS_MAX - 1)
        found.range, found.day_from, found.day_to = "custom", day_from, day_to
    else:
        if chosen == "custom":
            notes.append(f"No days given for the range: showing {RANGE_LABELS[DEFAULT_RANGE].lower()}.")
        elif chosen and chosen not in RANGES:
            notes.append(f"Ignored the range {chosen!r}: one of {', '.join(RANGES)}.")
        found.range = chosen if chosen in RANGES else DEFAULT_RANGE
    page = params.get("page", "1")[:10]
    if page.isdigit() and 1 <= int(page) <= PAGES_MAX:
        found.page = int(page)
    else:
        notes.append(f"Ignored the page {page!r}: 1 to {PAGES_MAX}.")
    return found


def filtered_runs(actor: Actor, chosen: RunFilter, *, since: datetime, until: datetime) -> QuerySet[Run]:
    return selectors.run_list(actor=actor, guild_id=chosen.guild_id or None, agent_id=chosen.agent_id or None,
                              statuses=chosen.statuses, triggers=chosen.triggers, since=since, until=until)


def run_page(runs: QuerySet[Run], page: int) -> tuple[list[Run], bool]:
    """A page of runs, newest first, and whether older ones follow (one query: a row past the page says so)."""
    start = (page - 1) * PAGE_SIZE
    rows = list(runs.select_related("guild").only(
        "id", "guild__id", "guild__name", "agent_id", "trigger", "requester", "status", "model", "created_at",
        "duration_ms", "input_tokens", "output_tokens", "cost_usd")[start:start + PAGE_SIZE + 1])
    return rows[:PAGE_SIZE], len(rows) > PAGE_SIZE


def visible_guilds(actor: Actor) -> list[Guild]:
    return list(permissions.guild_queryset(actor, Guild.objects.all()).only("id", "name")
                .order_by("name", "pk")[:GUILDS_LISTED])


@dataclass
class Day:
    day: date
    runs: int = 0
    tokens: int = 0
    cost_usd: Decimal = Decimal(0)


@dataclass
class RunFigures:
    days: list[Day]
    runs: int = 0
    tokens: int = 0
    cost_usd: Decimal = Decimal(0)
    without_tokens: int = 0  # runs still going (or stopped before the usage came): the tokens are at least
    without_cost: int = 0  # runs with no price (a model without one, or still going): the cost is at least


def figures_per_day(runs: QuerySet[Run], *, since: datetime, until: datetime, zone: tzinfo) -> RunFigures:
    """Runs, tokens and cost per day of the viewer's zone, every day of the window (an empty day is a 0 bar), and
    their totals: one aggregate query whatever the number of runs."""
    rows = (runs.order_by().annotate(day=TruncDate("created_at", tzinfo=zone)).values("day")
            .annotate(runs=Count("pk"), input=Sum("input_tokens"), output=Sum("output_tokens"), cost=Sum("cost_usd"),
                      without_tokens=Count("pk", filter=Q(input_tokens__isnull=True) | Q(output_tokens__isnull=True)),
                      without_cost=Count("pk", filter=Q(cost_usd__isnull=True))))
    first, last = timezone.localtime(since, zone).date(), timezone.localtime(until - timedelta(microseconds=1), zone).date()
    days = {first + timedelta(days=n): Day(first + timedelta(days=n)) for n in range((last - first).days + 1)}
    figures = RunFigures(days=list(days.values()))
    for row in rows:
        day = days.get(row["day"])
        if day is None:  # not expected: the window bounds the runs
            continue
        day.runs, day.tokens = row["runs"], (row["input"] or 0) + (row["output"] or 0)
        day.cost_usd = row["cost"] or Decimal(0)
        figures.runs += day.runs
        figures.tokens += day.tokens
        figures.cost_usd += day.cost_usd
        figures.without_tokens += row["without_tokens"]
        figures.without_cost += row["without_cost"]
    return figures


@dataclass
class ToolCallView:
    call_id: str
    tool: str
    server: str = ""
    ok: bool | None = None
    duration_ms: int | None = None
    error: str = ""
    arguments: str | None = None  # None: not shown to this viewer (the conversation is its requester's)
    output: str | None = None


def run_conversation(run: Run, *, visible: bool) -> tuple[list[ThreadMessage], list[ToolCallView]]:
    """The run's messages (the question that started it, then what it wrote and its tools answered) and its tool
    calls: the run's record of each, with its input and output from the thread when the viewer may read it."""
    messages: list[ThreadMessage] = []
    if visible and run.thread_id:
        asked = Q(role="user", bus_message_id=run.message_id) if run.message_id is not None else Q(pk__in=[])
        messages = list(ThreadMessage.objects.filter(Q(run=run) | asked, thread_id=run.thread_id)
                        .order_by("id")[:RUN_MESSAGES_MAX])
    arguments: dict[str, str] = {}
    outputs: dict[str, str] = {}
    for message in messages:
        for call in message.tool_calls or []:
            if isinstance(call, dict):
                arguments[str(call.get("id"))] = str((call.get("function") or {}).get("arguments") or "")
        if message.role == "tool" and message.tool_call_id:
            outputs[message.tool_call_id] = message.content
    calls = []
    for record in run.tool_calls if isinstance(run.tool_calls, list) else []:
        if not isinstance(record, dict):
            continue
        call_id = str(record.get("id") or "")
        calls.append(ToolCallView(call_id=call_id, tool=str(record.get("tool") or "?"), server=str(record.get("server") or ""),
                                  ok=record.get("ok"), duration_ms=record.get("duration_ms"),
                                  error=str(record.get("error") or ""),
                                  arguments=arguments.get(call_id) if visible else None,
                                  output=outputs.get(call_id) if visible else None))
    return messages, calls


def queue_ms(run: Run) -> int | None:
    """From its creation to its start: how long it waited for its agent."""
    if run.started_at is None:
        return None
    return max(0, round((run.started_at - run.created_at).total_seconds() * 1000))
