"""Budgets: monthly caps on what LLM runs spend, per organisation and per guild.

Spend is the sum over this calendar month (UTC) of the runs' costs and tokens (input + output); a run whose cost
is unknown counts against the token cap only. Before a run, an exhausted budget keeps it from the provider;
during a run, RunGuard estimates what it has spent so far (tokens as characters / 4 until the provider reports
usage) so that it stops when it would cross a cap; after a run, a budget at 80 % warns the guild once a month.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from django.db.models import Count, Q, Sum
from django.db.models.functions import Coalesce
from django.utils import timezone

from guilds.agents.llm import pricing
from guilds.models import Budget, Guild, Run
from guilds.runtime.store import on_db_threads

WARN_AT = Decimal("0.8")
CHARS_PER_TOKEN = 4


def clock() -> datetime:
    """Now (tests put another clock here to cross a month)."""
    return timezone.now()


def month_of(moment: datetime) -> tuple[datetime, str]:
    """The UTC calendar month holding `moment`: (its first instant, "YYYY-MM")."""
    moment = moment.astimezone(UTC)
    return moment.replace(day=1, hour=0, minute=0, second=0, microsecond=0), f"{moment.year:04d}-{moment.month:02d}"


@dataclass(frozen=True)
class Spend:
    usd: Decimal
    tokens: int
    runs_without_cost: int


def spend_of(budget: Budget, since: datetime) -> Spend:
    runs = Run.objects.filter(created_at__gte=since)
    runs = runs.filter(guild_id=budget.guild_id) if budget.guild_id else runs.filter(
        guild__organization_id=budget.organization_id)
    totals = runs.aggregate(usd=Coalesce(Sum("cost_usd"), Decimal(0)),
                            tokens=Coalesce(Sum("input_tokens"), 0) + Coalesce(Sum("output_tokens"), 0),
                            without=Count("id", filter=Q(cost_usd__isnull=True)))
    return Spend(usd=Decimal(totals["usd"]), tokens=int(totals["tokens"]), runs_without_cost=totals["without"])


@dataclass(frozen=True)
class Limit:
    """A budget that applies to a run, with what has been spent against it this month."""

    budget: Budget
    spent: Spend
    month: str
    organization_id: str | None = None  # the guild's organisation (its budget's, or the one its guild is in)

    def exhausted(self, more_usd: Decimal | None = None, more_tokens: int = 0) -> bool:
        usd_cap, token_cap = self.budget.monthly_usd, self.budget.monthly_tokens
        if token_cap is not None and self.spent.tokens + more_tokens >= token_cap:
            return True
        return usd_cap is not None and self.spent.usd + (more_usd or 0) >= usd_cap

    def near(self) -> bool:
        usd_cap, token_cap = self.budget.monthly_usd, self.budget.monthly_tokens
        return ((token_cap is not None and self.spent.tokens >= token_cap * WARN_AT)
                or (usd_cap is not None and self.spent.usd >= usd_cap * WARN_AT))

    def describe(self) -> str:
        caps = [f"{self.spent.usd:.4f} of {self.budget.monthly_usd} USD" if self.budget.monthly_usd is not None else "",
                f"{self.spent.tokens} of {self.budget.monthly_tokens} tokens"
                if self.budget.monthly_tokens is not None else ""]
        return f"the {self.budget.scope}'s budget for {self.month} is spent ({', '.join(c for c in caps if c)})"

    def warning(self) -> dict[str, Any]:
        return {"scope": self.budget.scope, "organization_id": self.organization_id, "month": self.month,
                "spent_usd": str(self.spent.usd.quantize(Decimal("0.0001"))),
                "limit_usd": None if self.budget.monthly_usd is None else str(self.budget.monthly_usd),
                "spent_tokens": self.spent.tokens, "limit_tokens": self.budget.monthly_tokens}


def limits_of(guild_id: str) -> list[Limit]:
    """The guild's budget and its organisation's, with this month's spend (blocking)."""
    since, month = month_of(clock())
    organization_id = Guild.objects.filter(pk=guild_id).values_list("organization_id", flat=True).first()
    budgets = Budget.objects.filter(Q(guild_id=guild_id) | Q(organization_id=organization_id) if organization_id
                                    else Q(guild_id=guild_id))
    return [Limit(budget=budget, spent=spend_of(budget, since), month=month, organization_id=organization_id)
            for budget in budgets]


limits = on_db_threads(limits_of)


@on_db_threads
def warnings_due(guild_id: str) -> list[dict[str, Any]]:
    """The 80 % warnings to send now: each budget near its cap whose warning has not gone out this month (marked
    sent here, once, whichever process gets there first)."""
    due = []
    for limit in limits_of(guild_id):
        if limit.near() and Budget.objects.filter(pk=limit.budget.pk).exclude(warned_month=limit.month).update(
                warned_month=limit.month):
            due.append(limit.warning())
    return due


class BudgetCrossed(Exception):
    """A run would cross a budget: it stops where it is."""

    def __init__(self, limit: Limit) -> None:
        super().__init__(limit.describe())
        self.limit = limit


class RunGuard:
    """What a run has spent so far, against its budgets: the rounds the provider reported, plus the round going
    on, estimated from characters until its usage comes."""

    def __init__(self, limits: list[Limit], model: str) -> None:
        self.limits = limits
        self.model = model
        self.input_tokens = 0
        self.output_tokens = 0
        self.round_input = 0
        self.round_output_chars = 0

    def round_starts(self, messages: list[dict[str, Any]]) -> None:
        self.round_input = sum(len(str(m.get("content") or "")) for m in messages) // CHARS_PER_TOKEN + 1
        self.round_output_chars = 0
        try:
            self.check()
        except BudgetCrossed:
            self.round_input = 0  # never sent: nothing spent on it
            raise

    def token(self, text: str) -> None:
        self.round_output_chars += len(text)
        self.check()

    def round_ends(self, input_tokens: int | None, output_tokens: int | None) -> None:
        self.input_tokens += input_tokens if input_tokens is not None else self.round_input
        self.output_tokens += (output_tokens if output_tokens is not None
                               else self.round_output_chars // CHARS_PER_TOKEN)
        self.round_input = self.round_output_chars = 0

    def estimate(self) -> tuple[int, int]:
        """(input, output) tokens spent so far: reported for finished rounds, estimated for the one going on."""
        return (self.input_tokens + self.round_input,
                self.output_tokens + self.round_output_chars // CHARS_PER_TOKEN)

    def check(self) -> None:
        """Raises BudgetCrossed when what the run has spent would take a budget to its cap."""
        if not self.limits:
            return
        input_tokens, output_tokens = self.estimate()
        cost = None
        for limit in self.limits:
            if limit.budget.monthly_usd is not None and cost is None:
                cost = pricing.run_cost(self.model, input_tokens=input_tokens, output_tokens=output_tokens,
                                        cached_tokens=0)
            if limit.exhausted(more_usd=cost, more_tokens=input_tokens + output_tokens):
                raise BudgetCrossed(limit)
