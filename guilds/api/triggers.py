"""Triggers over REST: GET|POST /api/guilds/{id}/triggers, GET|PATCH|DELETE /api/triggers/{id},
POST /api/triggers/{id}/rotate-secret (the guild's launcher and its organisation's admins), and the signed
POST /api/triggers/{id}/events, whose signature is its only authentication (guilds.triggers checks it)."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.db import transaction
from django.urls import reverse
from drf_spectacular.utils import OpenApiParameter, extend_schema, inline_serializer
from rest_framework import exceptions, serializers, status
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from guilds import selectors, triggers
from guilds.models import Guild, GuildStatus, Trigger, TriggerFormat
from guildsite import permissions
from guildsite.api_common import list_response, problem_responses
from guildsite.errors import Conflict, problem
from guildsite.identity import actor_of

PROMPT_TEMPLATE_MAX_CHARS = 8000
_MANAGING = "managing a guild's triggers"


class TriggerSerializer(serializers.Serializer):
    id = serializers.CharField(read_only=True)
    guild_id = serializers.CharField(read_only=True)
    agent = serializers.CharField(max_length=64, source="agent_id", help_text="An agent's name in the guild's spec.")
    format = serializers.ChoiceField(choices=TriggerFormat.choices, required=False, default=TriggerFormat.GENERIC_JSON)
    prompt_template = serializers.CharField(max_length=PROMPT_TEMPLATE_MAX_CHARS, required=False, allow_blank=True,
                                            default="", help_text="The agent's message, {payload} standing for the "
                                                                  "event's JSON (default: the JSON itself).")
    use_site_secret = serializers.BooleanField(required=False, default=False,
                                               help_text="Verify with the site's TRIGGER_SIGNING_SECRET (zerg's "
                                                         "senders) instead of the trigger's own secret.")
    enabled = serializers.BooleanField(required=False, default=True)
    events_url = serializers.SerializerMethodField(help_text="Where to POST its signed events.")
    previous_secret_expires_at = serializers.DateTimeField(read_only=True, allow_null=True)
    last_event_at = serializers.DateTimeField(read_only=True, allow_null=True)
    created_by = serializers.CharField(read_only=True, allow_null=True, source="created_by.username", default=None)
    created_at = serializers.DateTimeField(read_only=True)
    updated_at = serializers.DateTimeField(read_only=True)

    def get_events_url(self, trigger: Trigger) -> str:
        return reverse("trigger-events", kwargs={"trigger_id": trigger.pk})

    def to_representation(self, trigger: Trigger) -> dict[str, Any]:
        data = super().to_representation(trigger)
        by_id = {agent_id: name for name, agent_id in selectors.agent_ids_by_name(trigger.guild).items()}
        data["agent"] = by_id.get(trigger.agent_id, trigger.agent_id)
        return data


class TriggerCreatedSerializer(TriggerSerializer):
    secret = serializers.CharField(read_only=True, help_text="Shown this once: sign events with it.")


def _checked(guild: Guild, data: dict[str, Any]) -> dict[str, Any]:
    fields = dict(data)
    if "agent_id" in fields:  # given as a name
        agent_id = selectors.agent_ids_by_name(guild).get(fields.pop("agent_id"))
        if agent_id is None:
            raise exceptions.ValidationError({"agent": ["not the name of an agent in the guild's spec"]})
        fields["agent_id"] = agent_id
    if fields.get("use_site_secret") and not settings.TRIGGER_SIGNING_SECRET:
        raise exceptions.ValidationError({"use_site_secret": ["the site has no TRIGGER_SIGNING_SECRET"]})
    return fields


def _manageable(request: Request, trigger_id: str) -> Trigger:
    actor = actor_of(request)
    trigger = selectors.trigger_for(actor, trigger_id)
    permissions.guild_control_check(actor, trigger.guild, doing=_MANAGING)
    return trigger


def _created(trigger: Trigger, secret: str, code: int) -> Response:
    return Response({**TriggerSerializer(trigger).data, "secret": secret}, status=code)


class GuildTriggersApi(APIView):
    @extend_schema(operation_id="listTriggers", summary="A guild's triggers (never their secrets)",
                   responses={200: TriggerSerializer(many=True), **problem_responses(401, 403, 404)}, tags=["triggers"])
    def get(self, request: Request, guild_id: str) -> Response:
        actor = actor_of(request)
        guild = selectors.guild_for(actor, guild_id)
        permissions.guild_control_check(actor, guild, doing=_MANAGING)
        return list_response(request, selectors.trigger_list(guild), TriggerSerializer)

    @extend_schema(operation_id="createTrigger", summary="A signed webhook that sends its events to an agent",
                   request=TriggerSerializer,
                   responses={201: TriggerCreatedSerializer, **problem_responses(400, 401, 403, 404, 409)},
                   tags=["triggers"])
    def post(self, request: Request, guild_id: str) -> Response:
        actor = actor_of(request)
        guild = selectors.guild_for(actor, guild_id)
        permissions.guild_control_check(actor, guild, doing=_MANAGING)
        if guild.status == GuildStatus.STOPPED:
            raise Conflict(f"guild {guild.pk} is stopped; add triggers to a guild launched anew")
        body = TriggerSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        if guild.triggers.count() >= settings.GUILDSITE_TRIGGERS_PER_GUILD:
            raise Conflict(f"guild {guild.pk} has {settings.GUILDSITE_TRIGGERS_PER_GUILD} triggers, the most it may "
                           "have: delete one first", code="too_many_triggers")
        trigger = Trigger(guild=guild, organization_id=guild.organization_id, created_by=actor.user,
                          **_checked(guild, body.validated_data))
        secret = triggers.trigger_create(trigger=trigger)
        return _created(trigger, secret, status.HTTP_201_CREATED)


class TriggerApi(APIView):
    @extend_schema(operation_id="getTrigger", summary="A trigger (never its secret)",
                   responses={200: TriggerSerializer, **problem_responses(401, 403, 404)}, tags=["triggers"])
    def get(self, request: Request, trigger_id: str) -> Response:
        return Response(TriggerSerializer(_manageable(request, trigger_id)).data)

    @extend_schema(operation_id="updateTrigger", summary="Change a trigger ({\"enabled\": false} disables it)",
                   request=TriggerSerializer,
                   responses={200: TriggerSerializer, **problem_responses(400, 401, 403, 404)}, tags=["triggers"])
    def patch(self, request: Request, trigger_id: str) -> Response:
        trigger = _manageable(request, trigger_id)
        body = TriggerSerializer(data=request.data, partial=True)
        body.is_valid(raise_exception=True)
        fields = _checked(trigger.guild, body.validated_data)
        with transaction.atomic():
            trigger = Trigger.objects.select_for_update(of=("self",)).select_related("guild", "created_by").get(pk=trigger.pk)
            for name, value in fields.items():
                setattr(trigger, name, value)
            trigger.save()
        return Response(TriggerSerializer(trigger).data)

    @extend_schema(operation_id="deleteTrigger", summary="Delete a trigger",
                   responses={204: None, **problem_responses(401, 403, 404)}, tags=["triggers"])
    def delete(self, request: Request, trigger_id: str) -> Response:
        _manageable(request, trigger_id).delete()
        return Response(status=status.HTTP_204_NO_CONTENT)


class TriggerRotateSecretApi(APIView):
    @extend_schema(operation_id="rotateTriggerSecret",
                   summary="A new secret (the old one verifies for GUILDSITE_TRIGGER_ROTATION_GRACE_SECONDS more)",
                   request=None, responses={200: TriggerCreatedSerializer, **problem_responses(401, 403, 404)},
                   tags=["triggers"])
    def post(self, request: Request, trigger_id: str) -> Response:
        trigger = _manageable(request, trigger_id)
        secret = triggers.trigger_rotate_secret(trigger=trigger)
        return _created(trigger, secret, status.HTTP_200_OK)


class TriggerEventsApi(APIView):
    """The signature is the authentication: no bearer token, no session, no CSRF."""

    authentication_classes: list = []
    permission_classes = [AllowAny]
    throttle_classes: list = []

    @extend_schema(
        operation_id="sendTriggerEvent", summary="A signed event for the trigger's agent (seed 004)",
        request={"application/json": {"type": "object"}}, auth=[],
        parameters=[OpenApiParameter(triggers.TIMESTAMP_HEADER, str, OpenApiParameter.HEADER, required=True,
                                     description="Seconds since 1970, within 300 s of now."),
                    OpenApiParameter(triggers.SIGNATURE_HEADER, str, OpenApiParameter.HEADER, required=True,
                                     description="Hex HMAC-SHA256 of \"{timestamp}.{raw body}\".")],
        responses={202: inline_serializer("TriggerEventAccepted", {"status": serializers.CharField(),
                                                                   "run_id": serializers.CharField()}),
                   **problem_responses(400, 403, 404, 409, 413, 429)},
        tags=["triggers"])
    def post(self, request: Request, trigger_id: str) -> Response:
        limit = settings.GUILDSITE_TRIGGER_MAX_BYTES
        try:
            declared = int(request.META.get("CONTENT_LENGTH") or 0)
        except ValueError:
            declared = 0
        body = b"" if declared > limit else request._request.read(limit + 1)
        if declared > limit or len(body) > limit:
            return _refusal(413, "too_large", f"the body is over {limit} bytes")
        try:
            accepted = triggers.event_accept(trigger_id=trigger_id,
                                             timestamp_header=request.headers.get(triggers.TIMESTAMP_HEADER),
                                             signature_header=request.headers.get(triggers.SIGNATURE_HEADER),
                                             body=body)
        except triggers.EventRefused as refused:
            return _refusal(refused.status, refused.code, refused.detail, refused.retry_after)
        return Response(accepted, status=status.HTTP_202_ACCEPTED)


def _refusal(code: int, error: str, detail: str, retry_after: int | None = None) -> Response:
    response = Response(problem(code, error, detail), status=code)
    if retry_after is not None:
        response["Retry-After"] = str(retry_after)
    return response
