"""Guild HTTP shapes."""

from __future__ import annotations

from rest_framework import serializers

from guilds.models import Guild

_SUMMARY_FIELDS = [
    "id",
    "name",
    "description",
    "status",
    "status_detail",
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

    class Meta:
        model = Guild
        fields = _SUMMARY_FIELDS


class GuildDetailSerializer(GuildSummarySerializer):
    spec = serializers.JSONField(help_text="The spec the guild runs, with its agents' ids.")

    class Meta(GuildSummarySerializer.Meta):
        fields = [*_SUMMARY_FIELDS[:3], "spec", *_SUMMARY_FIELDS[3:]]
