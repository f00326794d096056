"""The guild's dead letters over REST: list, redeliver, delete (its launcher and its organisation's admins)."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema
from rest_framework import exceptions, serializers, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from guilds import dead_letters
from guilds.models import DeadLetter, Guild
from guilds.selectors import guild_for
from guildsite import permissions
from guildsite.api_common import LIST_PARAMETERS, list_response, problem_responses
from guildsite.errors import Conflict
from guildsite.identity import actor_of


class DeadLetterSerializer(serializers.ModelSerializer):
    message_id = serializers.CharField(help_text="The message's id (a decimal string).")
    message = serializers.JSONField(help_text="The message as it waited, or {'undecodable': its raw text}.")

    class Meta:
        model = DeadLetter
        fields = ["message_id", "agent_id", "message", "reason", "attempts", "failed_at"]


def _guild(request: Request, guild_id: str, doing: str) -> Guild:
    actor = actor_of(request)
    guild = guild_for(actor, guild_id)
    permissions.guild_control_check(actor, guild, doing=doing)
    return guild


def _letters(guild: Guild, message_id: str) -> list[DeadLetter]:
    letters = list(dead_letters.dead_letter_list(guild=guild).filter(message_id=int(message_id))) \
        if message_id.isdigit() and len(message_id) <= 20 else []
    if not letters:
        raise exceptions.NotFound(f"guild {guild.pk} has no dead letter {message_id}")
    return letters


class DeadLettersApi(APIView):
    @extend_schema(operation_id="listDeadLetters", summary="Messages no agent could be given (newest first)",
                   description="A message whose handling failed outside its handler (it could not be decoded, "
                               "its agent could not be loaded, the process died) GUILDSITE_DELIVERY_MAX_ATTEMPTS "
                               "times. For the guild's launcher and the admins of its organisation.",
                   parameters=LIST_PARAMETERS,
                   responses={200: DeadLetterSerializer(many=True), **problem_responses(400, 401, 403, 404)},
                   tags=["guilds"])
    def get(self, request: Request, guild_id: str) -> Response:
        guild = _guild(request, guild_id, "reading dead letters")
        return list_response(request, dead_letters.dead_letter_list(guild=guild), DeadLetterSerializer)


class DeadLetterRedeliverApi(APIView):
    @extend_schema(operation_id="redeliverDeadLetter", summary="Give a dead-lettered message to its agent again",
                   request=None,
                   responses={202: None, **problem_responses(401, 403, 404, 409)}, tags=["guilds"])
    def post(self, request: Request, guild_id: str, message_id: str) -> Response:
        guild = _guild(request, guild_id, "redelivering dead letters")
        for letter in _letters(guild, message_id):
            try:
                dead_letters.dead_letter_redeliver(letter=letter)
            except dead_letters.NotRedeliverable as exc:
                raise Conflict(str(exc)) from None
        return Response(status=status.HTTP_202_ACCEPTED)


class DeadLetterApi(APIView):
    @extend_schema(operation_id="deleteDeadLetter", summary="Drop a dead letter for good",
                   responses={204: None, **problem_responses(401, 403, 404)}, tags=["guilds"])
    def delete(self, request: Request, guild_id: str, message_id: str) -> Response:
        guild = _guild(request, guild_id, "deleting dead letters")
        for letter in _letters(guild, message_id):
            dead_letters.dead_letter_delete(letter=letter)
        return Response(status=status.HTTP_204_NO_CONTENT)
