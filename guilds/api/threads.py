"""An LLM agent's conversations over REST: the caller's own threads, their messages, rename, delete.

A thread is its user's alone: anyone else's, in this organisation or another, is a 404.
"""

from __future__ import annotations

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import exceptions, serializers, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from guilds import selectors
from guilds.models import Thread, ThreadMessage
from guildsite import permissions
from guildsite.api_common import LIST_PARAMETERS, list_response, problem_responses
from guildsite.identity import actor_of

# Query filters are ids: longer than the longest id stored is a typo or a probe, not a filter.
FILTER_MAX_CHARS = {"guild_id": 64, "agent_id": 128}


def query_filter(request: Request, name: str) -> str | None:
    value = request.query_params.get(name)
    if value is None or value == "":
        return None
    limit = FILTER_MAX_CHARS[name]
    if len(value) > limit:
        raise exceptions.ValidationError({name: [f"at most {limit} characters"]})
    return value


class ThreadSerializer(serializers.ModelSerializer):
    guild_id = serializers.CharField(read_only=True)
    organization_id = serializers.CharField(read_only=True, allow_null=True)
    title = serializers.CharField(max_length=Thread._meta.get_field("title").max_length, allow_blank=True,
                                  help_text="Empty until renamed.")

    class Meta:
        model = Thread
        fields = ["id", "guild_id", "agent_id", "organization_id", "conversation_id", "title", "created_at",
                  "updated_at"]
        read_only_fields = ["id", "guild_id", "agent_id", "organization_id", "conversation_id", "created_at",
                            "updated_at"]


class ThreadRenameSerializer(serializers.Serializer):
    title = serializers.CharField(max_length=Thread._meta.get_field("title").max_length, allow_blank=True,
                                  trim_whitespace=True)


class ThreadMessageSerializer(serializers.ModelSerializer):
    message_id = serializers.SerializerMethodField(help_text="The bus message it came from or went out as "
                                                             "(a decimal string), null for none.")
    run_id = serializers.CharField(read_only=True, allow_null=True)

    class Meta:
        model = ThreadMessage
        fields = ["id", "role", "content", "tool_calls", "tool_call_id", "tool_result", "input_tokens", "output_tokens",
                  "message_id", "run_id", "created_at"]

    def get_message_id(self, message: ThreadMessage) -> str | None:
        return None if message.bus_message_id is None else str(message.bus_message_id)


THREAD_FILTERS = [
    OpenApiParameter("guild_id", OpenApiTypes.STR, description="Only this guild's threads."),
    OpenApiParameter("agent_id", OpenApiTypes.STR, description="Only threads with this agent."),
]


class ThreadListApi(APIView):
    @extend_schema(operation_id="listThreads", summary="Your conversations with LLM agents, most recently active first",
                   parameters=[*THREAD_FILTERS, *LIST_PARAMETERS],
                   responses={200: ThreadSerializer(many=True), **problem_responses(400, 401)}, tags=["threads"])
    def get(self, request: Request) -> Response:
        threads = selectors.thread_list(actor=actor_of(request), guild_id=query_filter(request, "guild_id"),
                                        agent_id=query_filter(request, "agent_id"))
        return list_response(request, threads, ThreadSerializer)


class ThreadDetailApi(APIView):
    @extend_schema(operation_id="getThread", summary="One of your threads",
                   responses={200: ThreadSerializer, **problem_responses(401, 404)}, tags=["threads"])
    def get(self, request: Request, thread_id: str) -> Response:
        return Response(ThreadSerializer(selectors.thread_for(actor_of(request), thread_id)).data)

    @extend_schema(operation_id="renameThread", summary="Rename one of your threads",
                   request=ThreadRenameSerializer,
                   responses={200: ThreadSerializer, **problem_responses(400, 401, 403, 404)}, tags=["threads"])
    def patch(self, request: Request, thread_id: str) -> Response:
        actor = actor_of(request)
        thread = selectors.thread_for(actor, thread_id)
        permissions.thread_write_check(actor, thread, doing="renaming a thread")
        body = ThreadRenameSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        thread.title = body.validated_data["title"]
        thread.save(update_fields=["title", "updated_at"])
        return Response(ThreadSerializer(thread).data)

    @extend_schema(operation_id="deleteThread", summary="Delete one of your threads and its messages",
                   description="Its runs stay (their figures count in the totals), without their thread.",
                   responses={204: None, **problem_responses(401, 403, 404)}, tags=["threads"])
    def delete(self, request: Request, thread_id: str) -> Response:
        actor = actor_of(request)
        thread = selectors.thread_for(actor, thread_id)
        permissions.thread_write_check(actor, thread, doing="deleting a thread")
        thread.delete()
        return Response(status=status.HTTP_204_NO_CONTENT)


class ThreadMessagesApi(APIView):
    @extend_schema(operation_id="listThreadMessages", summary="A thread's messages, oldest first",
                   parameters=LIST_PARAMETERS,
                   responses={200: ThreadMessageSerializer(many=True), **problem_responses(400, 401, 404)},
                   tags=["threads"])
    def get(self, request: Request, thread_id: str) -> Response:
        thread = selectors.thread_for(actor_of(request), thread_id)
        return list_response(request, selectors.thread_messages(thread), ThreadMessageSerializer)
