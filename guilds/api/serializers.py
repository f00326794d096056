"""Guild HTTP shapes."""

from __future__ import annotations

from typing import Any

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from guilds.models import Guild
from guilds.runtime.registry import agent_class_or_none
from guildsite.redaction import redact_spec

_SUMMARY_FIELDS = [
    "id",
    "name",
    "description",
    "status",
    "status_detail",
    "suspended",
    "suspended_at",
    "organization_id",
    "user_id",
    "blueprint_id",
    "created_at",
    "updated_at",
    "started_at",
    "stopped_at",
]


class GuildSummarySerializer(serializers.ModelSerializer):
    """A guild in a list: everything but the spec."""

    blueprint_id = serializers.CharField(allow_null=True, read_only=True)
    organization_id = serializers.CharField(allow_null=True, read_only=True)
    user_id = serializers.SerializerMethodField(help_text="Who launched it (their user id).")

    class Meta:
        model = Guild
        fields = _SUMMARY_FIELDS

    def get_user_id(self, guild: Guild) -> str | None:
        return guild.launched_by.get_username() if guild.launched_by else None


class GuildDetailSerializer(GuildSummarySerializer):
    spec = serializers.SerializerMethodField(help_text='The spec the guild runs, with its agents\' ids; secrets as "***".')
    thread_agent_ids = serializers.SerializerMethodField(
        help_text="Its agents that keep a thread per conversation (LLM agents, subclasses included): GET /api/threads.")

    @extend_schema_field(OpenApiTypes.OBJECT)
    def get_spec(self, guild: Guild) -> dict[str, Any]:
        return redact_spec(guild.spec)

    def get_thread_agent_ids(self, guild: Guild) -> list[str]:
        agents = [agent for agent in (guild.spec or {}).get("agents") or [] if isinstance(agent, dict)]
        return [agent["id"] for agent in agents
                if agent.get("id") and getattr(agent_class_or_none(agent.get("class_name")), "keeps_threads", False)]

    class Meta(GuildSummarySerializer.Meta):
        fields = [*_SUMMARY_FIELDS[:3], "spec", *_SUMMARY_FIELDS[3:], "thread_agent_ids"]
