"""The runs pages: every run the viewer sees, filtered, with its totals and charts per day; and one run with its
conversation, tool calls and timings. They read what GET /api/runs and /api/runs/{id} read the same viewer; the
Cancel button calls POST /api/runs/{id}/cancel."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import render
from django.utils import timezone
from django.views.decorators.csrf import ensure_csrf_cookie

from guilds import selectors
from guilds.dashboard import run_selectors as runs_read
from guilds.dashboard.views import _allowed, _common, _page_actor, _sign_in, viewer_zone
from guilds.models import Run, RunStatus, RunTrigger
from guildsite import permissions
from guildsite.page_policy import strict_page

CHART_WIDTH, CHART_HEIGHT = 600, 120  # the viewBox: the SVG scales to its box, the bars with it
RUN_ID_MAX_CHARS = Run._meta.get_field("id").max_length
CANCELLABLE = frozenset({RunStatus.QUEUED, RunStatus.RUNNING})


@dataclass
class Bar:
    x: float
    y: float
    width: float
    height: float
    label: str  # the bar's <title>: its day and figure


def _chart(days: list[runs_read.Day], figure: str, unit: str) -> dict:
    """Bars in viewBox units, the tallest the chart's height (an empty day a 0-height bar, so days keep their
    places). Presentation attributes, not style="": the pages' CSP allows no inline style."""
    values = [getattr(day, figure) for day in days]
    top = max(values, default=0) or 1
    slot = CHART_WIDTH / max(len(days), 1)
    bars = []
    for n, (day, value) in enumerate(zip(days, values, strict=True)):
        height = round(float(value) / float(top) * CHART_HEIGHT, 2)
        shown = f"${value:.6f}" if isinstance(value, Decimal) else f"{value} {unit}{'' if value == 1 else 's'}"
        bars.append(Bar(x=round(n * slot + slot * 0.1, 2), y=round(CHART_HEIGHT - height, 2),
                        width=round(slot * 0.8, 2), height=height, label=f"{day.day:%b %-d}: {shown}"))
    return {"figure": figure, "bars": bars, "width": CHART_WIDTH, "height": CHART_HEIGHT,
            "top": f"${top:.6f}" if isinstance(top, Decimal) else top}


@strict_page
@ensure_csrf_cookie
def runs_page(request: HttpRequest) -> HttpResponse:
    actor = _page_actor(request)
    if actor is None:
        return _sign_in(request)
    zone = viewer_zone(request)
    chosen = runs_read.run_filter_parse(request.GET)
    since, until = chosen.window(timezone.now(), zone)
    runs = runs_read.filtered_runs(actor, chosen, since=since, until=until)
    rows, older = runs_read.run_page(runs, chosen.page)
    figures = runs_read.figures_per_day(runs, since=since, until=until, zone=zone)
    context = {
        **_common(request, actor), "filter": chosen, "rows": rows, "figures": figures,
        "older_query": chosen.query(page=chosen.page + 1) if older else "",
        "newer_query": chosen.query(page=chosen.page - 1) if chosen.page > 1 else "",
        "guilds": runs_read.visible_guilds(actor), "statuses": RunStatus.choices, "triggers": RunTrigger.choices,
        "ranges": runs_read.RANGE_LABELS.items(), "since": since, "until": until, "zone": getattr(zone, "key", "UTC"),
        "charts": [("Runs per day", _chart(figures.days, "runs", "run")),
                   ("Tokens per day", _chart(figures.days, "tokens", "token")),
                   ("Cost per day (USD)", _chart(figures.days, "cost_usd", ""))],
    }
    with timezone.override(zone):
        return render(request, "dashboard/runs.html", context)


@strict_page
@ensure_csrf_cookie  # the Cancel button's POST sends the CSRF token with the session cookie
def run_page(request: HttpRequest, run_id: str) -> HttpResponse:
    actor = _page_actor(request)
    if actor is None:
        return _sign_in(request)
    try:
        if len(run_id) > RUN_ID_MAX_CHARS:  # not an id: not looked up
            raise permissions.NotFound("No such run.")
        run = selectors.run_for(actor, run_id)
    except permissions.NotFound:
        raise Http404("No such run.") from None
    visible = permissions.run_messages_visible(actor, run)
    messages, calls = runs_read.run_conversation(run, visible=visible)
    context = {
        **_common(request, actor), "run": run, "guild": run.guild, "messages": messages, "tool_calls": calls,
        "messages_visible": visible, "queue_ms": runs_read.queue_ms(run),
        "tokens": None if run.input_tokens is None or run.output_tokens is None else run.input_tokens + run.output_tokens,
        "can_cancel": run.status in CANCELLABLE and _allowed(permissions.run_cancel_check, actor, run),
    }
    with timezone.override(viewer_zone(request)):
        return render(request, "dashboard/run.html", context)
