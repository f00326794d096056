"""LLM agents' runs over REST: a filtered list with its totals, and one run with its conversation.

Runs are read as their guild's detail is (anyone in its organisation, viewers included); a run's
messages are its requester's history, so only they, the guild's launcher and the organisation's
admins see them.
"""

from __future__ import annotations

from datetime import UTC, datetime, time
from decimal import Decimal
from typing import Any

from django.utils import timezone
from django.utils.dateparse import parse_date, parse_datetime
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema, extend_schema_field, inline_serializer
from rest_framework import exceptions, serializers, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from guilds import selectors, services
from guilds.api.threads import ThreadMessageSerializer, query_filter
from guilds.models import Run, RunStatus, RunTrigger
from guildsite import permissions
from guildsite.api_common import LIST_PARAMETERS, list_window, problem_responses, with_next_link
from guildsite.errors import Conflict
from guildsite.identity import actor_of
from messaging.errors import InvalidMessageId
from messaging.ids import parse_id

# A run shows at most this many of its thread's messages (the thread's own endpoint pages through all).
RUN_MESSAGES_MAX = 200
DATETIME_MAX_CHARS = 64


def _choices(request: Request, name: str, valid: list[str]) -> list[str]:
    """`?status=failed&status=running` or `?status=failed,running`."""
    wanted = [part.strip().lower() for value in request.query_params.getlist(name) for part in value.split(",")
              if part.strip()]
    unknown = [value for value in wanted if value not in valid]
    if unknown:
        raise exceptions.ValidationError({name: [f"unknown: {', '.join(v[:40] for v in unknown[:10])}; "
                                                 f"one of {', '.join(valid)}"]})
    return wanted


def _moment(request: Request, name: str) -> datetime | None:
    """An ISO 8601 time (no zone: UTC) or a date (its midnight, UTC)."""
    raw = request.query_params.get(name)
    if not raw:
        return None
    parsed: datetime | None = None
    if len(raw) <= DATETIME_MAX_CHARS:
        try:
            parsed = parse_datetime(raw)
            if parsed is None and (day := parse_date(raw)) is not None:
                parsed = datetime.combine(day, time.min)
        except ValueError:
            parsed = None
    if parsed is None:
        raise exceptions.ValidationError({name: ["an ISO 8601 time (2026-12-06T12:00:00Z) or a date (2026-12-06)"]})
    return parsed if timezone.is_aware(parsed) else timezone.make_aware(parsed, UTC)


def _message_id(request: Request) -> int | None:
    raw = request.query_params.get("message_id")
    if not raw:
        return None
    try:
        return parse_id(raw)
    except InvalidMessageId as exc:
        raise exceptions.ValidationError({"message_id": [str(exc)]}) from None


def _money(value: Decimal | None) -> str | None:
    return None if value is None else format(value.normalize(), "f")


class RunSerializer(serializers.ModelSerializer):
    guild_id = serializers.CharField(read_only=True)
    thread_id = serializers.CharField(read_only=True, allow_null=True)
    message_id = serializers.SerializerMethodField(help_text="The bus message that started it (a decimal string).")
    cost_usd = serializers.SerializerMethodField(help_text="A decimal string; null when the model's price is unknown.")

    class Meta:
        model = Run
        fields = ["id", "guild_id", "agent_id", "thread_id", "trigger", "requester", "status", "message_id", "model",
                  "created_at", "started_at", "finished_at", "duration_ms", "time_to_first_token_ms", "input_tokens",
                  "output_tokens", "cached_tokens", "cost_usd", "error", "tool_calls", "notes"]

    def get_message_id(self, run: Run) -> str | None:
        return None if run.message_id is None else str(run.message_id)

    @extend_schema_field(OpenApiTypes.STR)
    def get_cost_usd(self, run: Run) -> str | None:
        return _money(run.cost_usd)


class RunDetailSerializer(RunSerializer):
    messages = serializers.SerializerMethodField(
        help_text=f"Its thread's messages, oldest first (at most {RUN_MESSAGES_MAX}; GET /api/threads/{{id}}/messages "
                  "pages through all). Null when its thread is gone or is not yours to read.")

    class Meta(RunSerializer.Meta):
        fields = [*RunSerializer.Meta.fields, "messages"]

    @extend_schema_field(ThreadMessageSerializer(many=True, allow_null=True))
    def get_messages(self, run: Run) -> list[dict[str, Any]] | None:
        if not self.context["messages_visible"]:
            return None
        return ThreadMessageSerializer(selectors.thread_messages(run.thread)[:RUN_MESSAGES_MAX], many=True).data


TOTALS = inline_serializer("RunTotals", {
    "runs": serializers.IntegerField(),
    "input_tokens": serializers.IntegerField(allow_null=True),
    "output_tokens": serializers.IntegerField(allow_null=True),
    "cached_tokens": serializers.IntegerField(allow_null=True),
    "cost_usd": serializers.CharField(allow_null=True, help_text="A decimal string."),
    "runs_without_cost": serializers.IntegerField(),
})


class RunListApi(APIView):
    @extend_schema(
        operation_id="listRuns", summary="LLM agents' runs in the guilds you see, newest first, with totals",
        description="`results` is one page (Link header to the next); `totals` covers every run of the filter. A "
                    "total is null when any run of the filter lacks that figure (still running, a model without a "
                    "price): never an undercount, never unknown as 0.",
        parameters=[
            OpenApiParameter("guild_id", OpenApiTypes.STR), OpenApiParameter("agent_id", OpenApiTypes.STR),
            OpenApiParameter("status", OpenApiTypes.STR, many=True, explode=True,
                             description=f"Repeat or separate with commas: {', '.join(RunStatus.values)}."),
            OpenApiParameter("trigger", OpenApiTypes.STR, many=True, explode=True,
                             description=f"Repeat or separate with commas: {', '.join(RunTrigger.values)}."),
            OpenApiParameter("since", OpenApiTypes.DATETIME, description="Created at or after (ISO 8601 or a date)."),
            OpenApiParameter("until", OpenApiTypes.DATETIME, description="Created before (ISO 8601 or a date)."),
            OpenApiParameter("message_id", OpenApiTypes.STR,
                             description="The run a message started (the id POST /api/guilds/{id}/messages gave)."),
            *LIST_PARAMETERS,
        ],
        responses={200: inline_serializer("RunList", {"results": RunSerializer(many=True), "totals": TOTALS}),
                   **problem_responses(400, 401)},
        tags=["runs"],
    )
    def get(self, request: Request) -> Response:
        runs = selectors.run_list(
            actor=actor_of(request), guild_id=query_filter(request, "guild_id"), agent_id=query_filter(request, "agent_id"),
            statuses=_choices(request, "status", RunStatus.values), triggers=_choices(request, "trigger", RunTrigger.values),
            since=_moment(request, "since"), until=_moment(request, "until"), message_id=_message_id(request),
        )
        rows, next_url = list_window(request, runs)
        totals = selectors.run_totals(runs)
        totals["cost_usd"] = _money(totals["cost_usd"])
        return with_next_link(Response({"results": RunSerializer(rows, many=True).data, "totals": totals}), next_url)


class RunDetailApi(APIView):
    @extend_schema(operation_id="getRun", summary="One run, with its thread's messages",
                   responses={200: RunDetailSerializer, **problem_responses(401, 404)}, tags=["runs"])
    def get(self, request: Request, run_id: str) -> Response:
        actor = actor_of(request)
        run = selectors.run_for(actor, run_id)
        visible = permissions.run_messages_visible(actor, run)
        return Response(RunDetailSerializer(run, context={"messages_visible": visible}).data)


class RunCancelApi(APIView):
    @extend_schema(operation_id="cancelRun", summary="Stop a queued or running run",
                   description="Its agent closes the provider's stream (within GUILDSITE_RUN_CANCEL_POLL_SECONDS), "
                               "keeps the partial answer (sent as the reply and stored in the thread) and marks the "
                               "run `cancelled`, with a runUpdate on the guild's system topic. For whoever asked "
                               "for the run, the guild's launcher and the organisation's admins; 409 once it ended.",
                   request=None, responses={202: None, **problem_responses(401, 403, 404, 409)}, tags=["runs"])
    def post(self, request: Request, run_id: str) -> Response:
        actor = actor_of(request)
        run = selectors.run_for(actor, run_id)
        permissions.run_cancel_check(actor, run)
        try:
            services.run_cancel(run=run)
        except services.RunFinished as exc:
            raise Conflict(str(exc)) from None
        return Response(status=status.HTTP_202_ACCEPTED)
