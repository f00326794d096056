"""Budgets over REST: GET and PUT /api/organizations/{id}/budget and /api/guilds/{id}/budget (the organisation's
admins). A budget caps what LLM runs spend a calendar month (UTC), in USD and in tokens (guilds.budgets)."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from django.db import transaction
from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from guilds import budgets
from guilds.models import Budget
from guilds.selectors import guild_for
from guildsite import permissions
from guildsite.accounts.models import Organization
from guildsite.api_common import problem_responses
from guildsite.identity import actor_of

MAX_USD = Decimal("1000000000")
MAX_TOKENS = 10**15


class BudgetSerializer(serializers.Serializer):
    monthly_usd = serializers.DecimalField(max_digits=14, decimal_places=4, min_value=Decimal(0), max_value=MAX_USD,
                                           allow_null=True, required=False, coerce_to_string=True,
                                           help_text="USD a month (a decimal string); null or left out: no cap.")
    monthly_tokens = serializers.IntegerField(min_value=0, max_value=MAX_TOKENS, allow_null=True, required=False,
                                              help_text="Input and output tokens a month; null or left out: no cap.")


class BudgetStateSerializer(BudgetSerializer):
    month = serializers.CharField(help_text="This month, UTC: YYYY-MM.")
    spent_usd = serializers.CharField(help_text="This month's runs' costs (a decimal string).")
    spent_tokens = serializers.IntegerField()
    runs_without_cost = serializers.IntegerField(help_text="Runs counted against the token cap only.")


def _state(budget: Budget | None, **owner: Any) -> dict[str, Any]:
    since, month = budgets.month_of(budgets.clock())
    spent = budgets.spend_of(budget or Budget(**owner), since)
    return {"monthly_usd": None if budget is None or budget.monthly_usd is None else str(budget.monthly_usd),
            "monthly_tokens": None if budget is None else budget.monthly_tokens, "month": month,
            "spent_usd": str(spent.usd.quantize(Decimal("0.0001"))), "spent_tokens": spent.tokens,
            "runs_without_cost": spent.runs_without_cost}


def _put(request: Request, **owner: Any) -> dict[str, Any]:
    body = BudgetSerializer(data=request.data)
    body.is_valid(raise_exception=True)
    caps = {"monthly_usd": body.validated_data.get("monthly_usd"),
            "monthly_tokens": body.validated_data.get("monthly_tokens")}
    with transaction.atomic():
        budget, _ = Budget.objects.select_for_update().update_or_create(**owner, defaults=caps)
    return _state(budget, **owner)


SCHEMA = {"request": BudgetSerializer, "responses": {200: BudgetStateSerializer,
                                                     **problem_responses(400, 401, 403, 404)}}


class OrganizationBudgetApi(APIView):
    def _organization(self, request: Request, organization_id: str, doing: str) -> Organization:
        permissions.budget_check(actor_of(request), organization_id, doing=doing)
        return Organization.objects.get(pk=organization_id)

    @extend_schema(operation_id="getOrganizationBudget", summary="The organisation's monthly budget and its spend",
                   responses=SCHEMA["responses"], tags=["budgets"])
    def get(self, request: Request, organization_id: str) -> Response:
        organization = self._organization(request, organization_id, "reading the budget")
        return Response(_state(Budget.objects.filter(organization=organization).first(), organization=organization))

    @extend_schema(operation_id="putOrganizationBudget", summary="Set the organisation's monthly caps (a field "
                   "left out or null: no cap)", **SCHEMA, tags=["budgets"])
    def put(self, request: Request, organization_id: str) -> Response:
        organization = self._organization(request, organization_id, "setting the budget")
        return Response(_put(request, organization=organization))


class GuildBudgetApi(APIView):
    def _guild(self, request: Request, guild_id: str, doing: str):
        actor = actor_of(request)
        guild = guild_for(actor, guild_id)
        permissions.budget_check(actor, guild.organization_id, doing=doing)
        return guild

    @extend_schema(operation_id="getGuildBudget", summary="The guild's monthly budget and its spend",
                   responses=SCHEMA["responses"], tags=["budgets"])
    def get(self, request: Request, guild_id: str) -> Response:
        guild = self._guild(request, guild_id, "reading the guild's budget")
        return Response(_state(Budget.objects.filter(guild=guild).first(), guild=guild))

    @extend_schema(operation_id="putGuildBudget", summary="Set the guild's monthly caps (a field left out or null: "
                   "no cap)", **SCHEMA, tags=["budgets"])
    def put(self, request: Request, guild_id: str) -> Response:
        guild = self._guild(request, guild_id, "setting the guild's budget")
        return Response(_put(request, guild=guild))
