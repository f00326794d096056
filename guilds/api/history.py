"""GET /api/guilds/{id}/history: an operator browses any topic of a guild's stored messages (guilds.history)."""

from __future__ import annotations

from types import SimpleNamespace

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import exceptions
from rest_framework.negotiation import DefaultContentNegotiation
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from guilds import history
from guilds.selectors import guild_for
from guildsite import permissions
from guildsite.api_common import problem_responses
from guildsite.identity import actor_of
from messaging import topics as topic_names
from messaging.errors import InvalidMessageId
from messaging.ids import parse_id

LIMIT_DEFAULT, LIMIT_MAX = 50, 100
# Longest accepted value per parameter (the spec caps agent ids at 128 and names at 64; topics and formats
# are free text, but nothing real comes near these).
MAX_LENGTHS = {"topic": 300, "sender": 200, "format": 300, "before_id": 40, "limit": 3}


class _FormatIsAFilter(DefaultContentNegotiation):
    """`?format=` filters messages here: it must not pick a renderer (DRF's URL_FORMAT_OVERRIDE would 404)."""

    settings = SimpleNamespace(URL_FORMAT_OVERRIDE=None)


def _param(request: Request, name: str) -> str | None:
    """The parameter, None when absent or empty (a dashboard's blank field); a 400 when too long."""
    value = request.query_params.get(name)
    if not value:
        return None
    if len(value) > MAX_LENGTHS[name]:
        raise exceptions.ValidationError({name: [f"at most {MAX_LENGTHS[name]} characters"]})
    return value


def _limit(request: Request) -> int:
    raw = _param(request, "limit") or str(LIMIT_DEFAULT)
    if not (raw.isascii() and raw.isdigit()) or not 1 <= int(raw) <= LIMIT_MAX:
        raise exceptions.ValidationError({"limit": [f"a whole number from 1 to {LIMIT_MAX}"]})
    return int(raw)


def _before_id(request: Request) -> int | None:
    raw = _param(request, "before_id")
    try:
        return parse_id(raw) if raw is not None else None
    except InvalidMessageId as exc:
        raise exceptions.ValidationError({"before_id": [str(exc)]}) from None


class GuildHistoryApi(APIView):
    content_negotiation_class = _FormatIsAFilter

    @extend_schema(
        operation_id="getGuildHistory",
        summary="Browse a topic of the guild's stored messages, newest first, filtered and paged",
        description=(
            "For the guild's launcher and the admins of its organisation (who may read every user's history). "
            f"Each request reads at most the topic's newest {history.SCAN_CAP:,} messages and filters those: "
            "older messages are out of reach, and `next_before_id` is null once this window has no more matches. "
            "Answers `{topic, topics, messages, next_before_id}`: `topics` lists the guild's browsable topics "
            "(sorted), `messages` are messages in their wire form."
        ),
        parameters=[
            OpenApiParameter("topic", OpenApiTypes.STR, description=(
                f"One of the guild's topics (default `{topic_names.DEFAULT_TOPIC}`): the default and status "
                "topics, an agent's additional topic, a route's destination, `user:{member}:inbox` or "
                f"`user:{{member}}:notifications`. At most {MAX_LENGTHS['topic']} characters.")),
            OpenApiParameter("sender", OpenApiTypes.STR, description=(
                f"Only messages whose sender's id or name is exactly this (at most {MAX_LENGTHS['sender']}).")),
            OpenApiParameter("format", OpenApiTypes.STR, description=(
                "Only messages of this format: the full name, or its short name after the last dot "
                f"(`ChatCompletionResponse` matches `x.y.ChatCompletionResponse`); at most {MAX_LENGTHS['format']}.")),
            OpenApiParameter("before_id", OpenApiTypes.STR, description=(
                "Only messages older than this id (a decimal string): the previous answer's `next_before_id`.")),
            OpenApiParameter("limit", OpenApiTypes.INT, description=(
                f"At most this many messages (1-{LIMIT_MAX}, default {LIMIT_DEFAULT}).")),
        ],
        responses={200: OpenApiTypes.OBJECT, **problem_responses(400, 401, 403, 404)}, tags=["guilds"],
    )
    def get(self, request: Request, guild_id: str) -> Response:
        actor = actor_of(request)
        guild = guild_for(actor, guild_id)
        permissions.guild_messages_browse_check(actor, guild)
        topic = _param(request, "topic") or topic_names.DEFAULT_TOPIC
        limit, before_id = _limit(request), _before_id(request)
        sender, message_format = _param(request, "sender"), _param(request, "format")
        topics = history.guild_topics(guild)
        if topic not in topics:
            raise exceptions.ValidationError({"topic": [
                "not a topic of this guild: give the default or status topic, an agent's additional topic, a "
                "route's destination, or user:{member}:inbox / user:{member}:notifications of a member"]})
        page = history.guild_messages_browse(guild=guild, topic=topic, limit=limit, sender=sender,
                                             message_format=message_format, before_id=before_id)
        return Response({
            "topic": topic,
            "topics": topics,
            "messages": [message.to_wire() for message in page.messages],
            "next_before_id": str(page.next_before_id) if page.next_before_id is not None else None,
        })
