"""External agents over REST: POST|GET /api/external-agents, GET|DELETE /api/external-agents/{id},
GET|POST /api/external-agents/{id}/commands and GET /api/commands/{id}. Organisation admins register and delete,
members send commands, viewers read; another organisation's ids answer 404. An agent's key is returned once, at
registration."""

from __future__ import annotations

from typing import Any

import orjson
from django.db import transaction
from drf_spectacular.utils import extend_schema
from rest_framework import exceptions, serializers, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from guilds import selectors
from guilds.external import commands, presence, registry, signals
from guilds.models import ExternalAgent, ExternalCommand
from guilds.runtime import loop as runtime_loop
from guildsite import permissions
from guildsite.accounts.models import Organization
from guildsite.api_common import list_response, problem_responses
from guildsite.errors import Conflict
from guildsite.identity import acting_organization_id, actor_of

CONTENT_MAX_CHARS = 64 * 1024
PARAMETERS_MAX_BYTES = 64 * 1024


class ExternalAgentSerializer(serializers.Serializer):
    id = serializers.CharField(read_only=True)
    organization_id = serializers.CharField(max_length=64, required=False, allow_null=True,
                                            help_text="Its organisation (default: yours).")
    name = serializers.CharField(max_length=128)
    created_by = serializers.CharField(read_only=True, allow_null=True, source="created_by.username", default=None)
    created_at = serializers.DateTimeField(read_only=True)

    def to_representation(self, agent: ExternalAgent) -> dict[str, Any]:
        data = super().to_representation(agent)
        # What the agent said of itself when it last registered, and whether it is there now.
        entry = presence.status_entry(agent)
        for field in ("status", "version", "capabilities", "hostname", "platform", "metrics", "last_seen_at"):
            data[field] = entry[field]
        return data


class ExternalAgentCreatedSerializer(ExternalAgentSerializer):
    key = serializers.CharField(read_only=True, help_text="Shown this once: the agent connects to /ws/agents/ with it.")


class CommandSerializer(serializers.ModelSerializer):
    agent_id = serializers.CharField(read_only=True)
    cancels = serializers.CharField(read_only=True, allow_null=True, source="cancels_id")
    created_by = serializers.CharField(read_only=True, allow_null=True, source="created_by.username", default=None)
    result = serializers.SerializerMethodField()

    class Meta:
        model = ExternalCommand
        fields = ["id", "agent_id", "type", "content", "parameters", "timeout_s", "is_cancellation", "cancels", "state",
                  "result", "created_by", "created_at", "expires_at", "sent_at", "acknowledged_at", "finished_at"]

    def get_result(self, command: ExternalCommand) -> dict[str, Any] | None:
        """Seed 003's CommandResult, once the agent reported one (or the command ended without it)."""
        if command.success is None and not command.error_message:
            return None
        return {"success": bool(command.success), "output": command.output, "error_message": command.error_message,
                "exit_code": command.exit_code, "execution_time_ms": command.execution_time_ms}


class CommandRequestSerializer(serializers.Serializer):
    type = serializers.CharField(max_length=64, required=False)
    content = serializers.CharField(max_length=CONTENT_MAX_CHARS, required=False, allow_blank=True, default="")
    parameters = serializers.DictField(required=False, default=dict)
    timeout_s = serializers.IntegerField(min_value=1, required=False, default=commands.DEFAULT_TIMEOUT_S)
    cancel = serializers.CharField(max_length=64, required=False,
                                   help_text="The id of a command to cancel (instead of type/content).")

    def validate_parameters(self, parameters: dict[str, Any]) -> dict[str, Any]:
        if len(orjson.dumps(parameters)) > PARAMETERS_MAX_BYTES:
            raise serializers.ValidationError(f"at most {PARAMETERS_MAX_BYTES} bytes of JSON")
        return parameters

    def validate_timeout_s(self, timeout_s: int) -> int:
        if timeout_s > commands.max_timeout_s():
            raise serializers.ValidationError(f"at most {commands.max_timeout_s()} s "
                                              "(GUILDSITE_EXTERNAL_COMMAND_MAX_TIMEOUT_S)")
        return timeout_s

    def validate(self, data: dict[str, Any]) -> dict[str, Any]:
        if "cancel" in data and "type" in data:
            raise serializers.ValidationError({"cancel": ["either a command (type, content…) or cancel, not both"]})
        if "cancel" not in data and "type" not in data:
            raise serializers.ValidationError({"type": ["the command's type is required (or cancel: <command id>)"]})
        return data


def _work_waits(agent_id: str) -> None:
    transaction.on_commit(lambda: runtime_loop.run(signals.work_waits(agent_id, commands=True)))


class ExternalAgentsApi(APIView):
    @extend_schema(operation_id="listExternalAgents", summary="The external agents of your organisations",
                   responses={200: ExternalAgentSerializer(many=True), **problem_responses(401)},
                   tags=["external agents"])
    def get(self, request: Request) -> Response:
        return list_response(request, selectors.external_agent_list(actor_of(request)), ExternalAgentSerializer)

    @extend_schema(operation_id="registerExternalAgent", summary="Register an agent that runs elsewhere (its key once)",
                   request=ExternalAgentSerializer,
                   responses={201: ExternalAgentCreatedSerializer, **problem_responses(400, 401, 403, 404, 409)},
                   tags=["external agents"])
    def post(self, request: Request) -> Response:
        actor = actor_of(request)
        body = ExternalAgentSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        data = body.validated_data
        if actor.user is None:
            raise exceptions.NotAuthenticated("registering an external agent needs a signed-in user")
        organization_id = acting_organization_id(actor, actor.user, data.get("organization_id"), field="organization_id")
        permissions.external_agent_manage_check(actor, organization_id, doing="registering an external agent")
        organization = Organization.objects.filter(pk=organization_id).first()
        if organization is None:
            raise permissions.NotFound(f"organisation '{organization_id}' not found")
        try:
            agent, key = registry.external_agent_register(organization=organization, created_by=actor.user,
                                                          name=data["name"])
        except registry.TooMany as exc:
            raise Conflict(str(exc), code="too_many_external_agents") from None
        return Response({**ExternalAgentSerializer(agent).data, "key": key}, status=status.HTTP_201_CREATED)


class ExternalAgentApi(APIView):
    @extend_schema(operation_id="getExternalAgent", summary="An external agent and its status (never its key)",
                   responses={200: ExternalAgentSerializer, **problem_responses(401, 404)}, tags=["external agents"])
    def get(self, request: Request, agent_id: str) -> Response:
        return Response(ExternalAgentSerializer(selectors.external_agent_for(actor_of(request), agent_id)).data)

    @extend_schema(operation_id="deleteExternalAgent", summary="Delete an external agent: its key stops working",
                   responses={204: None, **problem_responses(401, 403, 404)}, tags=["external agents"])
    def delete(self, request: Request, agent_id: str) -> Response:
        actor = actor_of(request)
        agent = selectors.external_agent_for(actor, agent_id)
        permissions.external_agent_manage_check(actor, agent.organization_id, doing="deleting an external agent")
        registry.external_agent_delete(agent=agent)
        return Response(status=status.HTTP_204_NO_CONTENT)


class ExternalAgentCommandsApi(APIView):
    @extend_schema(operation_id="listExternalAgentCommands", summary="An external agent's commands, newest first",
                   responses={200: CommandSerializer(many=True), **problem_responses(401, 404)}, tags=["external agents"])
    def get(self, request: Request, agent_id: str) -> Response:
        agent = selectors.external_agent_for(actor_of(request), agent_id)
        commands.commands_expire(agent.pk)
        return list_response(request, agent.commands.select_related("created_by").order_by("-created_at", "-pk"),
                             CommandSerializer)

    @extend_schema(operation_id="sendExternalAgentCommand",
                   summary="Send a command ({type, content, parameters, timeout_s}) or cancel one ({cancel})",
                   request=CommandRequestSerializer,
                   responses={201: CommandSerializer, **problem_responses(400, 401, 403, 404, 409)},
                   tags=["external agents"])
    def post(self, request: Request, agent_id: str) -> Response:
        actor = actor_of(request)
        agent = selectors.external_agent_for(actor, agent_id)
        permissions.external_agent_command_check(actor, agent.organization_id)
        body = CommandRequestSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        data = body.validated_data
        with transaction.atomic():
            if "cancel" in data:
                target = agent.commands.filter(pk=data["cancel"]).first()
                if target is None:
                    raise exceptions.ValidationError({"cancel": [f"agent {agent.pk} has no command '{data['cancel']}'"]})
                try:
                    command = commands.command_cancel(target=target, created_by=actor.user)
                except commands.CommandClosed as exc:
                    raise Conflict(str(exc), code="command_ended") from None
            else:
                command = commands.command_create(agent=agent, created_by=actor.user, type=data["type"],
                                                  content=data["content"], parameters=data["parameters"],
                                                  timeout_s=data["timeout_s"])
            _work_waits(agent.pk)
        return Response(CommandSerializer(command).data, status=status.HTTP_201_CREATED)


class CommandApi(APIView):
    @extend_schema(operation_id="getCommand", summary="A command for an external agent, and its result",
                   responses={200: CommandSerializer, **problem_responses(401, 404)}, tags=["external agents"])
    def get(self, request: Request, command_id: str) -> Response:
        command = selectors.external_command_for(actor_of(request), command_id)
        if commands.commands_expire(command.agent_id):
            command.refresh_from_db()
        return Response(CommandSerializer(command).data)
