"""POST /api/guilds/{id}/messages: a message into the guild as the caller's, as if sent on their user socket.

The frame rules are the socket's (guilds.sockets.frames.user_message) and the sending is the socket's
path (guilds.services.guild_message_post): the user's inbox, their proxy, the guild's routes, or the
named agent's inbox alone.
"""

from __future__ import annotations

import orjson
from django.conf import settings
from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import exceptions, serializers, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from guilds import services
from guilds.runtime import formats
from guilds.selectors import guild_for
from guilds.sockets import frames
from guildsite import idempotency, permissions
from guildsite.api_common import problem_responses
from guildsite.errors import Conflict
from guildsite.idempotency import idempotent, scope_of
from guildsite.identity import acting_user, actor_of
from messaging.message import Message

CONVERSATION_ID_MAX_CHARS = 256  # Thread.conversation_id
AGENT_ID_MAX_CHARS = 128


class PostMessageSerializer(serializers.Serializer):
    format = serializers.CharField(max_length=300, help_text=f"One of {', '.join(sorted(formats.USER_FORMATS))}.")
    payload = serializers.JSONField(help_text="A JSON object, as a socket frame's payload.")
    agent = serializers.CharField(required=False, allow_blank=False, max_length=AGENT_ID_MAX_CHARS,
                                  help_text="An agent's id: to that agent's inbox alone, past the guild's routes. "
                                            "Else the guild's routes carry it, as a socket message.")
    conversation_id = serializers.CharField(required=False, allow_null=True, max_length=CONVERSATION_ID_MAX_CHARS,
                                            help_text="Which thread with an LLM agent (else the default one).")


class GuildMessagesApi(APIView):
    @extend_schema(
        parameters=[idempotency.PARAMETER], operation_id="postGuildMessage",
        summary="Send a message into the guild as yours (as your user socket would)",
        description="Needs the role member in the guild's organisation, as the user socket does. A suspended guild is "
                    "resumed first. Replies reach your user sockets and GET /api/guilds/{id}/{user_id}/messages. "
                    "Each agent's handling of the message is a run with trigger `api`. With `agent`, that agent's run "
                    "is made at once (status `queued`) and its id returned; without, the guild's routes decide which "
                    "agents take it: GET /api/runs?message_id=<id> finds their runs once they start.",
        request=PostMessageSerializer,
        responses={202: inline_serializer("PostedMessage", {
            "id": serializers.CharField(help_text="The message's id (a decimal string)."),
            "run_id": serializers.CharField(required=False, help_text="With `agent`: that agent's run.")}),
            **problem_responses(400, 401, 403, 404, 409)},
        tags=["guilds"],
    )
    def post(self, request: Request, guild_id: str) -> Response:
        actor = actor_of(request)
        guild = guild_for(actor, guild_id)
        permissions.guild_message_send_check(actor, guild)
        body = PostMessageSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        data = body.validated_data
        payload_bytes = len(orjson.dumps(data["payload"]))
        if payload_bytes > settings.GUILDSITE_WS_FRAME_MAX_BYTES:
            raise exceptions.ValidationError({"payload": [
                f"{payload_bytes} bytes is over the limit of {settings.GUILDSITE_WS_FRAME_MAX_BYTES} (a socket frame's)"]})
        agent_id = data.get("agent")
        if agent_id is not None and agent_id not in {agent.get("id") for agent in guild.spec.get("agents", [])}:
            raise exceptions.NotFound(f"guild {guild.pk} has no agent '{agent_id}'")
        user = acting_user(actor, None, must_be_caller=True, field="user_id")
        frame = {"format": data["format"], "payload": data["payload"], "conversation_id": data.get("conversation_id")}
        if agent_id is not None:
            frame["recipient_list"] = [{"id": agent_id}]
        username = user.get_username()

        def message_of() -> Message:
            return frames.user_message(frame, user_id=username, user_name=username)

        try:
            message_of()  # checked now, for a 400; made again when sent
        except frames.FrameError as exc:
            field = "format" if exc.error_type == frames.UNKNOWN_FORMAT else "payload"
            raise exceptions.ValidationError({field: [str(exc)]}) from None
        def post() -> Response:
            try:
                sent, run = services.guild_message_post(guild=guild, user=user, user_name=username,
                                                        message_of=message_of, to_agent=agent_id)
            except services.GuildStopped as exc:
                raise Conflict(str(exc)) from None
            answer = {"id": str(sent.id)}
            if run is not None:
                answer["run_id"] = run.pk
            return Response(answer, status=status.HTTP_202_ACCEPTED)

        return idempotent(request, scope=scope_of(actor, guild.organization_id), work=post)
