"""Schedules over REST: GET|POST /api/guilds/{id}/schedules, GET|PATCH|DELETE /api/schedules/{id} and
POST /api/schedules/{id}/run ("run now"). The guild's launcher and its organisation's admins manage them;
whoever sees the guild reads them (guilds.schedules fires them)."""

from __future__ import annotations

from typing import Any

import orjson
from django.conf import settings
from django.db import transaction
from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import exceptions, serializers, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from guilds import schedules, selectors, services
from guilds.models import Guild, GuildStatus, MisfirePolicy, Schedule
from guilds.sockets import frames
from guildsite import idempotency, permissions
from guildsite.api_common import list_response, problem_responses
from guildsite.errors import Conflict
from guildsite.idempotency import idempotent, scope_of
from guildsite.identity import actor_of

PAYLOAD_MAX_BYTES = 64 * 1024  # and never more than a socket frame may carry


class ScheduleSerializer(serializers.Serializer):
    id = serializers.CharField(read_only=True)
    guild_id = serializers.CharField(read_only=True)
    name = serializers.CharField(max_length=64, required=False, allow_blank=True,
                                 help_text="Its messages' sender name (default: schedule-{id}).")
    agent = serializers.CharField(max_length=64, required=False, allow_null=True,
                                  help_text="An agent's name in the guild's spec; null: the guild's default topic.")
    cron = serializers.CharField(max_length=120, help_text="Five fields: minute hour day-of-month month day-of-week.")
    timezone = serializers.CharField(max_length=64, required=False, default="UTC", help_text="An IANA name.")
    format = serializers.CharField(max_length=200, required=False, default="text")
    payload = serializers.JSONField(required=False, default=dict)
    misfire_policy = serializers.ChoiceField(choices=MisfirePolicy.choices, required=False, default=MisfirePolicy.SKIP)
    enabled = serializers.BooleanField(required=False, default=True)
    disabled_reason = serializers.CharField(read_only=True)
    next_run_at = serializers.DateTimeField(read_only=True, allow_null=True)
    last_run_at = serializers.DateTimeField(read_only=True, allow_null=True)
    last_run_id = serializers.CharField(read_only=True)
    created_by = serializers.CharField(read_only=True, allow_null=True, source="created_by.username", default=None)
    created_at = serializers.DateTimeField(read_only=True)
    updated_at = serializers.DateTimeField(read_only=True)

    def to_representation(self, schedule: Schedule) -> dict[str, Any]:
        data = super().to_representation(schedule)
        by_id = {agent_id: name for name, agent_id in selectors.agent_ids_by_name(schedule.guild).items()}
        data["agent"] = by_id.get(schedule.agent_id, schedule.agent_id) if schedule.agent_id else None
        return data

    def validate_payload(self, payload: Any) -> Any:
        if not isinstance(payload, dict):
            raise serializers.ValidationError("a JSON object")
        size, limit = len(orjson.dumps(payload)), min(PAYLOAD_MAX_BYTES, settings.GUILDSITE_WS_FRAME_MAX_BYTES)
        if size > limit:
            raise serializers.ValidationError(f"{size} bytes is over the limit of {limit}")
        return payload


def _checked(guild: Guild, data: dict[str, Any]) -> dict[str, Any]:
    """The body's fields as a Schedule's, each checked (400 naming the field)."""
    try:
        fields = schedules.schedule_fields(data, agent_ids_by_name=selectors.agent_ids_by_name(guild))
    except schedules.ScheduleInvalid as exc:
        raise exceptions.ValidationError({exc.field: [str(exc)]}) from None
    if "format" in fields or "payload" in fields:
        frame = {"format": fields.get("format", data.get("format", "text")), "payload": fields.get("payload", {})}
        try:  # what a user may send, a schedule may send
            frames.user_message(frame, user_id="schedule", user_name="schedule")
        except frames.FrameError as exc:
            field = "format" if exc.error_type == frames.UNKNOWN_FORMAT else "payload"
            raise exceptions.ValidationError({field: [str(exc)]}) from None
    return fields


def _manageable(request: Request, schedule_id: str) -> Schedule:
    actor = actor_of(request)
    schedule = selectors.schedule_for(actor, schedule_id)
    permissions.guild_control_check(actor, schedule.guild, doing="managing a guild's schedules")
    return schedule


class GuildSchedulesApi(APIView):
    @extend_schema(operation_id="listSchedules", summary="A guild's schedules",
                   responses={200: ScheduleSerializer(many=True), **problem_responses(401, 404)}, tags=["schedules"])
    def get(self, request: Request, guild_id: str) -> Response:
        guild = selectors.guild_for(actor_of(request), guild_id)
        return list_response(request, selectors.schedule_list(guild), ScheduleSerializer)

    @extend_schema(operation_id="createSchedule", summary="Send a message into the guild on a cron schedule",
                   request=ScheduleSerializer,
                   responses={201: ScheduleSerializer, **problem_responses(400, 401, 403, 404, 409)}, tags=["schedules"])
    def post(self, request: Request, guild_id: str) -> Response:
        actor = actor_of(request)
        guild = selectors.guild_for(actor, guild_id)
        permissions.guild_control_check(actor, guild, doing="managing a guild's schedules")
        if guild.status == GuildStatus.STOPPED:
            raise Conflict(f"guild {guild.pk} is stopped; schedule in a guild launched anew")
        body = ScheduleSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        if guild.schedules.count() >= settings.GUILDSITE_SCHEDULES_PER_GUILD:
            raise Conflict(f"guild {guild.pk} has {settings.GUILDSITE_SCHEDULES_PER_GUILD} schedules, the most it may "
                           f"have: delete one first", code="too_many_schedules")
        schedule = Schedule(guild=guild, organization_id=guild.organization_id, created_by=actor.user,
                            **_checked(guild, body.validated_data))
        schedules.schedule_next_run(schedule)
        schedule.save()
        return Response(ScheduleSerializer(schedule).data, status=status.HTTP_201_CREATED)


class ScheduleApi(APIView):
    @extend_schema(operation_id="getSchedule", summary="A schedule, with its next and last firing",
                   responses={200: ScheduleSerializer, **problem_responses(401, 404)}, tags=["schedules"])
    def get(self, request: Request, schedule_id: str) -> Response:
        return Response(ScheduleSerializer(selectors.schedule_for(actor_of(request), schedule_id)).data)

    @extend_schema(operation_id="updateSchedule", summary="Change a schedule ({\"enabled\": false} pauses it)",
                   request=ScheduleSerializer,
                   responses={200: ScheduleSerializer, **problem_responses(400, 401, 403, 404)}, tags=["schedules"])
    def patch(self, request: Request, schedule_id: str) -> Response:
        schedule = _manageable(request, schedule_id)
        body = ScheduleSerializer(data=request.data, partial=True)
        body.is_valid(raise_exception=True)
        fields = _checked(schedule.guild, body.validated_data)
        with transaction.atomic():
            schedule = Schedule.objects.select_for_update().select_related("guild").get(pk=schedule.pk)
            if fields.get("enabled") and schedule.guild.status == GuildStatus.STOPPED:
                raise Conflict(f"guild {schedule.guild_id} is stopped: its schedules stay disabled")
            timing_changed = any(name in fields and fields[name] != getattr(schedule, name)
                                 for name in ("cron", "timezone", "enabled"))
            for name, value in fields.items():
                setattr(schedule, name, value)
            if fields.get("enabled"):
                schedule.disabled_reason = ""
            if timing_changed:  # paused: no next firing; resumed or retimed: the next one from now
                schedules.schedule_next_run(schedule)
            schedule.save()
        return Response(ScheduleSerializer(schedule).data)

    @extend_schema(operation_id="deleteSchedule", summary="Delete a schedule",
                   responses={204: None, **problem_responses(401, 403, 404)}, tags=["schedules"])
    def delete(self, request: Request, schedule_id: str) -> Response:
        _manageable(request, schedule_id).delete()
        return Response(status=status.HTTP_204_NO_CONTENT)


class ScheduleRunApi(APIView):
    @extend_schema(operation_id="runSchedule", summary="Fire a schedule now (its next firing stays as it is)",
                   request=None, parameters=[idempotency.PARAMETER],
                   responses={202: inline_serializer("ScheduleFired", {
                       "run_id": serializers.CharField(allow_null=True, help_text="Its agent's run (null: the "
                                                       "schedule sends to the default topic; runs start as agents "
                                                       "take it)."),
                       "message_id": serializers.CharField()}), **problem_responses(401, 403, 404, 409)},
                   tags=["schedules"])
    def post(self, request: Request, schedule_id: str) -> Response:
        schedule = _manageable(request, schedule_id)

        def fire() -> Response:
            try:
                sent, run = services.schedule_message_send(schedule=schedule)
            except (services.GuildStopped, services.GuildNotReady) as exc:
                raise Conflict(str(exc)) from None
            return Response({"run_id": run.pk if run is not None else None, "message_id": str(sent.id)},
                            status=status.HTTP_202_ACCEPTED)

        return idempotent(request, scope=scope_of(actor_of(request), schedule.guild.organization_id), work=fire)
