"""Guild read endpoints: one guild, and guilds filtered by organization, user and status."""

from __future__ import annotations

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import exceptions
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from guilds import selectors
from guilds.api import serializers as s
from guilds.models import GuildStatus
from guildsite.api_common import LIST_PARAMETERS, list_response, problem_responses
from guildsite.identity import actor_of


def parse_statuses(values: list[str]) -> list[str]:
    """`?status=RUNNING&status=error` or `?status=RUNNING,ERROR`; case does not matter."""
    wanted = [part.strip().upper() for value in values for part in value.split(",") if part.strip()]
    valid = set(GuildStatus.values)
    unknown = [value for value in wanted if value not in valid]
    if unknown:
        raise exceptions.ValidationError(
            {"status": [f"Invalid status values: {', '.join(unknown)}. Valid statuses are: "
                        f"{', '.join(GuildStatus.values)}."]}
        )
    return wanted


class GuildListApi(APIView):
    @extend_schema(
        operation_id="listGuilds",
        summary="List the guilds of your organisations, newest first (without their specs)",
        parameters=[
            OpenApiParameter("organization_id", OpenApiTypes.STR, description="Only this organization's guilds."),
            OpenApiParameter("org_id", OpenApiTypes.STR, description="Same as organization_id."),
            OpenApiParameter("user_id", OpenApiTypes.STR, description="Only guilds this user launched."),
            OpenApiParameter(
                "status", OpenApiTypes.STR, many=True, explode=True,
                description=f"Only these statuses (repeat, or separate with commas): {', '.join(GuildStatus.values)}.",
            ),
            *LIST_PARAMETERS,
        ],
        responses={200: s.GuildSummarySerializer(many=True), **problem_responses(400)},
        tags=["guilds"],
    )
    def get(self, request: Request) -> Response:
        query = request.query_params
        guilds = selectors.guild_list(
            actor=actor_of(request),
            organization_id=query.get("organization_id") or query.get("org_id"),
            user_id=query.get("user_id"),
            statuses=parse_statuses(query.getlist("status")),
        )
        return list_response(request, guilds, s.GuildSummarySerializer)


class GuildDetailApi(APIView):
    @extend_schema(
        operation_id="getGuild",
        summary="One guild: its spec, status and timestamps",
        responses={200: s.GuildDetailSerializer, **problem_responses(404)},
        tags=["guilds"],
    )
    def get(self, request: Request, guild_id: str) -> Response:
        return Response(s.GuildDetailSerializer(selectors.guild_for(actor_of(request), guild_id)).data)
