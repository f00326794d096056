"""Outbound webhooks over REST: GET|POST /api/guilds/{id}/webhooks, GET|PATCH|DELETE /api/webhooks/{id},
GET /api/webhooks/{id}/deliveries and POST /api/webhook-deliveries/{id}/redeliver. The guild's launcher and its
organisation's admins manage them (guilds.webhooks sends the deliveries)."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.db import transaction
from drf_spectacular.utils import extend_schema
from rest_framework import exceptions, serializers, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from guilds import selectors, webhooks
from guilds.models import DeliveryStatus, Guild, GuildStatus, Webhook, WebhookDelivery, WebhookEvent
from guildsite import permissions
from guildsite.api_common import list_response, problem_responses
from guildsite.errors import Conflict
from guildsite.identity import actor_of

_MANAGING = "managing a guild's webhooks"


class WebhookSerializer(serializers.Serializer):
    id = serializers.CharField(read_only=True)
    guild_id = serializers.CharField(read_only=True)
    url = serializers.URLField(max_length=2000, help_text="Where its events are POSTed (http or https).")
    events = serializers.ListField(child=serializers.CharField(max_length=64), min_length=1, max_length=10,
                                   help_text="Any of: " + ", ".join(WebhookEvent.values) + ".")
    agent = serializers.CharField(max_length=64, required=False, allow_null=True,
                                  help_text="Only this agent's runs (a name in the guild's spec); null: every agent's.")
    enabled = serializers.BooleanField(required=False, default=True)
    created_by = serializers.CharField(read_only=True, allow_null=True, source="created_by.username", default=None)
    created_at = serializers.DateTimeField(read_only=True)
    updated_at = serializers.DateTimeField(read_only=True)

    def to_representation(self, webhook: Webhook) -> dict[str, Any]:
        data = super().to_representation(webhook)
        by_id = {agent_id: name for name, agent_id in selectors.agent_ids_by_name(webhook.guild).items()}
        data["agent"] = by_id.get(webhook.agent_id, webhook.agent_id) if webhook.agent_id else None
        return data

    def validate_url(self, url: str) -> str:
        refusal = webhooks.url_refusal(url)
        if refusal is not None:
            raise serializers.ValidationError(refusal)
        return url

    def validate_events(self, events: list[str]) -> list[str]:
        unknown = sorted(set(events) - set(WebhookEvent.values))
        if unknown:
            raise serializers.ValidationError(f"unknown event {unknown[0]!r}; the events are "
                                              + ", ".join(WebhookEvent.values))
        return sorted(set(events))


class WebhookCreatedSerializer(WebhookSerializer):
    secret = serializers.CharField(read_only=True, help_text="Shown this once: verify deliveries with it "
                                                             "(Standard Webhooks, whsec_…).")


class DeliverySerializer(serializers.ModelSerializer):
    webhook_id = serializers.CharField(read_only=True)
    redelivery_of = serializers.CharField(read_only=True, allow_null=True, source="redelivery_of_id")

    class Meta:
        model = WebhookDelivery
        fields = ["id", "webhook_id", "event_type", "event_id", "subject_id", "status", "attempts", "next_attempt_at",
                  "last_attempt_at", "last_status_code", "last_error", "redelivery_of", "created_at", "delivered_at"]


def _checked(guild: Guild, data: dict[str, Any]) -> dict[str, Any]:
    fields = dict(data)
    if "agent" in fields:
        name = fields.pop("agent")
        agent_id = selectors.agent_ids_by_name(guild).get(name) if name else ""
        if agent_id is None:
            raise exceptions.ValidationError({"agent": ["not the name of an agent in the guild's spec"]})
        fields["agent_id"] = agent_id
    return fields


def _manageable(request: Request, webhook_id: str) -> Webhook:
    actor = actor_of(request)
    webhook = selectors.webhook_for(actor, webhook_id)
    permissions.guild_control_check(actor, webhook.guild, doing=_MANAGING)
    return webhook


class GuildWebhooksApi(APIView):
    @extend_schema(operation_id="listWebhooks", summary="A guild's outbound webhooks (never their secrets)",
                   responses={200: WebhookSerializer(many=True), **problem_responses(401, 403, 404)}, tags=["webhooks"])
    def get(self, request: Request, guild_id: str) -> Response:
        actor = actor_of(request)
        guild = selectors.guild_for(actor, guild_id)
        permissions.guild_control_check(actor, guild, doing=_MANAGING)
        return list_response(request, selectors.webhook_list(guild), WebhookSerializer)

    @extend_schema(operation_id="createWebhook", summary="Post the guild's events, signed, to a URL",
                   request=WebhookSerializer,
                   responses={201: WebhookCreatedSerializer, **problem_responses(400, 401, 403, 404, 409)},
                   tags=["webhooks"])
    def post(self, request: Request, guild_id: str) -> Response:
        actor = actor_of(request)
        guild = selectors.guild_for(actor, guild_id)
        permissions.guild_control_check(actor, guild, doing=_MANAGING)
        if guild.status == GuildStatus.STOPPED:
            raise Conflict(f"guild {guild.pk} is stopped; it has no events left to tell")
        body = WebhookSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        if guild.webhooks.count() >= settings.GUILDSITE_WEBHOOKS_PER_GUILD:
            raise Conflict(f"guild {guild.pk} has {settings.GUILDSITE_WEBHOOKS_PER_GUILD} webhooks, the most it may "
                           "have: delete one first", code="too_many_webhooks")
        webhook = Webhook(guild=guild, organization_id=guild.organization_id, created_by=actor.user,
                          **_checked(guild, body.validated_data))
        secret = webhooks.webhook_create(webhook=webhook)
        return Response({**WebhookSerializer(webhook).data, "secret": secret}, status=status.HTTP_201_CREATED)


class WebhookApi(APIView):
    @extend_schema(operation_id="getWebhook", summary="An outbound webhook (never its secret)",
                   responses={200: WebhookSerializer, **problem_responses(401, 403, 404)}, tags=["webhooks"])
    def get(self, request: Request, webhook_id: str) -> Response:
        return Response(WebhookSerializer(_manageable(request, webhook_id)).data)

    @extend_schema(operation_id="updateWebhook", summary="Change a webhook ({\"enabled\": false} pauses it: its deliveries wait)",
                   request=WebhookSerializer,
                   responses={200: WebhookSerializer, **problem_responses(400, 401, 403, 404)}, tags=["webhooks"])
    def patch(self, request: Request, webhook_id: str) -> Response:
        webhook = _manageable(request, webhook_id)
        body = WebhookSerializer(data=request.data, partial=True)
        body.is_valid(raise_exception=True)
        fields = _checked(webhook.guild, body.validated_data)
        with transaction.atomic():
            webhook = Webhook.objects.select_for_update(of=("self",)).select_related("guild", "created_by").get(pk=webhook.pk)
            resumed = fields.get("enabled") and not webhook.enabled
            for name, value in fields.items():
                setattr(webhook, name, value)
            webhook.save()
        if resumed:
            webhooks.webhook_resumed(webhook=webhook)
        return Response(WebhookSerializer(webhook).data)

    @extend_schema(operation_id="deleteWebhook", summary="Delete a webhook and its delivery log",
                   responses={204: None, **problem_responses(401, 403, 404)}, tags=["webhooks"])
    def delete(self, request: Request, webhook_id: str) -> Response:
        _manageable(request, webhook_id).delete()
        return Response(status=status.HTTP_204_NO_CONTENT)


class WebhookDeliveriesApi(APIView):
    @extend_schema(operation_id="listWebhookDeliveries", summary="A webhook's deliveries, newest first",
                   responses={200: DeliverySerializer(many=True), **problem_responses(401, 403, 404)},
                   tags=["webhooks"])
    def get(self, request: Request, webhook_id: str) -> Response:
        return list_response(request, selectors.webhook_deliveries(_manageable(request, webhook_id)),
                             DeliverySerializer)


class DeliveryRedeliverApi(APIView):
    @extend_schema(operation_id="redeliverWebhookDelivery",
                   summary="Send a delivery's event again (same id and body), as a new delivery", request=None,
                   responses={202: DeliverySerializer, **problem_responses(401, 403, 404, 409)}, tags=["webhooks"])
    def post(self, request: Request, delivery_id: str) -> Response:
        actor = actor_of(request)
        delivery = selectors.delivery_for(actor, delivery_id)
        permissions.guild_control_check(actor, delivery.webhook.guild, doing=_MANAGING)
        if delivery.status == DeliveryStatus.PENDING:
            raise Conflict(f"delivery {delivery.pk} is still being tried (attempt {delivery.attempts + 1} is due "
                           "next): wait for it to succeed or be dead-lettered", code="delivery_pending")
        again = webhooks.redeliver(delivery=delivery)
        return Response(DeliverySerializer(again).data, status=status.HTTP_202_ACCEPTED)
