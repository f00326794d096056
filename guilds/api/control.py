"""Guild control and history over REST: stop, relaunch, a user's messages, files.

Stop and relaunch do what the system socket's commands and the admin's actions do
(guilds.services); history reads the user's stream on the guild's bus.
"""

from __future__ import annotations

import json

from django.http import FileResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema, inline_serializer
from rest_framework import exceptions, serializers, status
from rest_framework.parsers import MultiPartParser
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from guilds import files, services
from guilds.api.serializers import GuildDetailSerializer
from guilds.engines import bus_of
from guilds.models import GuildFile
from guilds.runtime import loop as runtime_loop
from guilds.selectors import guild_for, guild_has_member
from guildsite import permissions
from guildsite.api_common import problem_responses
from guildsite.errors import Conflict
from guildsite.identity import acting_user, actor_of
from messaging import topics as topic_names
from messaging.errors import InvalidMessageId
from messaging.ids import parse_id

HISTORY_LIMIT_MAX = 1000  # messages per history request; page on with since_id


def _named_user(request: Request) -> str | None:
    """The user a JSON or form body names (the seed's clients say who acts in `user_id`)."""
    data = request.data
    return data.get("user_id") if hasattr(data, "get") else None


class GuildStopApi(APIView):
    @extend_schema(operation_id="stopGuild", summary="Stop the guild (final), as the system socket's stopGuildRequest",
                   description="For the guild's launcher and the admins of its organisation.",
                   request=inline_serializer("StopGuild", {"user_id": serializers.CharField(
                       required=False, help_text="Development only: who stops it (else the caller).")}),
                   responses={200: GuildDetailSerializer, **problem_responses(400, 403, 404, 409)}, tags=["guilds"])
    def post(self, request: Request, guild_id: str) -> Response:
        actor = actor_of(request)
        guild = guild_for(actor, guild_id)
        stopper = acting_user(actor, _named_user(request), must_be_caller=True, field="user_id")
        permissions.guild_control_check(actor, guild, doing="stopping a guild")
        try:
            guild = services.guild_stop(guild_id=guild_id, user_id=stopper.get_username())
        except services.GuildStopped as exc:
            raise Conflict(str(exc)) from None
        return Response(GuildDetailSerializer(guild).data)


class GuildRelaunchApi(APIView):
    @extend_schema(operation_id="relaunchGuild",
                   summary="Start a guild whose agents are gone (after a restart, or out of ERROR)",
                   description="For the guild's launcher and the admins of its organisation.",
                   request=None,
                   responses={200: inline_serializer("Relaunch", {"is_relaunching": serializers.BooleanField()}),
                              **problem_responses(403, 404, 409)}, tags=["guilds"])
    def post(self, request: Request, guild_id: str) -> Response:
        actor = actor_of(request)
        permissions.guild_control_check(actor, guild_for(actor, guild_id), doing="relaunching a guild")
        try:
            started = services.guild_relaunch(guild_id=guild_id)
        except services.GuildStopped as exc:
            raise Conflict(str(exc)) from None
        return Response({"is_relaunching": started})


class UserMessagesApi(APIView):
    @extend_schema(
        operation_id="getUserMessages",
        summary="A user's message history in the guild (what their socket shows), oldest first",
        description="A user reads their own; the guild's launcher and the admins of its organisation read anyone's.",
        parameters=[OpenApiParameter("since_id", OpenApiTypes.STR, description="Only messages after this one."),
                    OpenApiParameter("limit", OpenApiTypes.INT,
                                     description=f"At most this many (1-{HISTORY_LIMIT_MAX}, the default): the newest, "
                                                 "or with since_id the first ones after it.")],
        responses={200: OpenApiTypes.OBJECT, **problem_responses(400, 403, 404)}, tags=["guilds"],
    )
    def get(self, request: Request, guild_id: str, user_id: str) -> Response:
        actor = actor_of(request)
        guild = guild_for(actor, guild_id)
        if actor.user is None and not actor.development:
            raise exceptions.NotAuthenticated()
        if actor.user is None:
            raise exceptions.ValidationError({"user_id": ["say who is reading: an X-User-Id header or ?user_id="]})
        permissions.guild_history_check(actor, guild, user_id)
        if not guild_has_member(guild, user_id):
            raise exceptions.NotFound(f"user {user_id} has not joined guild {guild.id}")
        try:
            since = request.query_params.get("since_id")
            since_id = parse_id(since) if since else None
        except InvalidMessageId as exc:
            raise exceptions.ValidationError({"since_id": [str(exc)]}) from None
        limit = request.query_params.get("limit", str(HISTORY_LIMIT_MAX))
        if not (limit.isascii() and limit.isdigit() and len(limit) <= 6) or not 1 <= int(limit) <= HISTORY_LIMIT_MAX:
            raise exceptions.ValidationError({"limit": [f"a whole number from 1 to {HISTORY_LIMIT_MAX}"]})
        limit = int(limit)
        topic = topic_names.user_notifications(user_id)

        async def history():  # on the runtime loop, where the bus lives
            bus = bus_of(guild.id, guild.spec)
            if since_id is not None:
                return await bus.get_messages_for_topic_since(topic, since_id, limit=limit)
            return await bus.get_messages(topic, limit=limit)

        return Response([message.to_wire() for message in runtime_loop.run(history())])


class FileSerializer(serializers.ModelSerializer):
    url = serializers.SerializerMethodField()

    class Meta:
        model = GuildFile
        fields = ["name", "url", "content_type", "size", "uploaded_by", "metadata", "created_at"]

    def get_url(self, record: GuildFile) -> str:
        return files.file_url(record.guild_id, record.name)


class GuildFilesApi(APIView):
    parser_classes = [MultiPartParser]

    @extend_schema(operation_id="listGuildFiles",
                   summary="Files uploaded to the guild (its members and the organisation's admins)",
                   responses={200: FileSerializer(many=True), **problem_responses(403, 404)}, tags=["files"])
    def get(self, request: Request, guild_id: str) -> Response:
        actor = actor_of(request)
        guild = guild_for(actor, guild_id)
        permissions.guild_files_check(actor, guild)
        return Response(FileSerializer(guild.files.all(), many=True).data)

    @extend_schema(
        operation_id="uploadGuildFile",
        summary="Upload a file (multipart field `file`, optional `file_meta` JSON) for a FilesWithTextFormat message",
        request={"multipart/form-data": inline_serializer("Upload", {
            "file": serializers.FileField(), "file_meta": serializers.CharField(required=False),
            "user_id": serializers.CharField(required=False),
            "on_conflict": serializers.ChoiceField(
                choices=["fail", "rename"], required=False,
                help_text="A name already taken: `fail` (409, the default) or `rename` (stored as \"name (2).ext\", "
                          "the first free one; the answer's `filename` says which).")})},
        responses={201: OpenApiTypes.OBJECT, **problem_responses(400, 403, 404, 409)}, tags=["files"],
    )
    def post(self, request: Request, guild_id: str) -> Response:
        actor = actor_of(request)
        guild = guild_for(actor, guild_id)
        permissions.guild_file_upload_check(actor, guild)
        uploader = acting_user(actor, _named_user(request), must_be_caller=True, field="user_id")
        upload = request.FILES.get("file")
        if upload is None:
            raise exceptions.ValidationError({"file": ["attach the file as the multipart field 'file'"]})
        try:
            metadata = json.loads(request.data.get("file_meta") or "{}")
            if not isinstance(metadata, dict):
                raise ValueError("not an object")
        except ValueError:
            raise exceptions.ValidationError({"file_meta": ["must be a JSON object"]}) from None
        on_conflict = request.data.get("on_conflict") or request.query_params.get("on_conflict") or "fail"
        if on_conflict not in ("fail", "rename"):
            raise exceptions.ValidationError({"on_conflict": ["'fail' or 'rename'"]})
        try:
            record = files.guild_file_upload(guild=guild, user_id=uploader.get_username(), upload=upload,
                                             metadata=metadata, rename_on_conflict=on_conflict == "rename")
        except (files.FileExists, files.GuildIsStopped) as exc:
            raise Conflict(str(exc)) from None
        except files.FileRejected as exc:
            raise exceptions.ValidationError({"file": [str(exc)]}) from None
        return Response({"guild_id": guild.id, "filename": record.name, "url": files.file_url(guild.id, record.name),
                         "content_type": record.content_type, "content_length": record.size},
                        status=status.HTTP_201_CREATED)


def _file_record(request: Request, guild_id: str, name: str) -> GuildFile:
    actor = actor_of(request)
    guild = guild_for(actor, guild_id)
    permissions.guild_files_check(actor, guild)
    record = GuildFile.objects.filter(guild=guild, name=name).first()
    if record is None:
        raise exceptions.NotFound(f"guild {guild_id} has no file named '{name}'")
    return record


class GuildFileApi(APIView):
    @extend_schema(operation_id="getGuildFile",
                   summary="A file's bytes, as an attachment (the guild's members and the organisation's admins)",
                   responses={(200, "application/octet-stream"): OpenApiTypes.BINARY, **problem_responses(403, 404)},
                   tags=["files"])
    def get(self, request: Request, guild_id: str, name: str) -> FileResponse:
        record = _file_record(request, guild_id, name)
        # Always an attachment, never rendered: an uploaded page must not run on the site's origin.
        response = FileResponse(files.file_path(guild_id, record.name).open("rb"), as_attachment=True,
                                filename=record.name, content_type=record.content_type)
        response["Content-Security-Policy"] = "sandbox"
        response["X-Content-Type-Options"] = "nosniff"
        return response

    @extend_schema(operation_id="deleteGuildFile",
                   summary="Delete a file (its uploader, the guild's launcher or the organisation's admins)",
                   responses={204: None, **problem_responses(403, 404)}, tags=["files"])
    def delete(self, request: Request, guild_id: str, name: str) -> Response:
        record = _file_record(request, guild_id, name)
        permissions.guild_file_delete_check(actor_of(request), record.guild, record.uploaded_by)
        files.guild_file_delete(record=record)
        return Response(status=status.HTTP_204_NO_CONTENT)
