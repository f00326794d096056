"""The catalog's HTTP shapes. Input serializers only check types; the rules live in catalog.services."""

from __future__ import annotations

from typing import Any

from rest_framework import serializers

from catalog.models import AgentEntry, Blueprint, Category, Exposure

# Ids travel in topic names and socket URLs, where ':' and '/' carry meaning.
ID_PATTERN = r"^[^\s:/]+$"


class IdSerializer(serializers.Serializer):
    id = serializers.CharField()


class JSONObjectField(serializers.JSONField):
    """A JSON value that must be an object."""

    default_error_messages = {"not_object": "Must be a JSON object."}

    def to_internal_value(self, data: Any) -> Any:
        value = super().to_internal_value(data)
        if not isinstance(value, dict):
            self.fail("not_object")
        return value


# --- agents ----------------------------------------------------------------


class AgentEntrySerializer(serializers.ModelSerializer):
    class Meta:
        model = AgentEntry
        fields = [
            "qualified_class_name",
            "agent_name",
            "description",
            "properties_schema",
            "dependencies",
            "message_handlers",
            "created_at",
            "updated_at",
        ]


class AgentEntryCreateSerializer(serializers.Serializer):
    qualified_class_name = serializers.CharField(max_length=512, help_text="e.g. guilds.agents.echo.EchoAgent")
    description = serializers.CharField(
        required=False, allow_blank=True, help_text="Defaults to the class's docstring."
    )
    properties_schema = JSONObjectField(required=False, help_text="Defaults to the class's properties schema.")
    dependencies = serializers.ListField(child=serializers.JSONField(), required=False)
    agent_name = serializers.CharField(max_length=128, required=False, allow_blank=True)
    message_handlers = JSONObjectField(required=False, help_text="Defaults to the class's handlers by format.")


# --- categories ------------------------------------------------------------


class CategorySerializer(serializers.ModelSerializer):
    class Meta:
        model = Category
        fields = ["id", "name", "description"]


class CategoryCreateSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=128)
    description = serializers.CharField(required=False, allow_blank=True, default="")


# --- blueprints ------------------------------------------------------------


class BlueprintInfoSerializer(serializers.ModelSerializer):
    """A blueprint in a list: everything but the spec."""

    category_id = serializers.CharField(allow_null=True, read_only=True)
    category_name = serializers.SerializerMethodField()

    class Meta:
        model = Blueprint
        fields = [
            "id",
            "name",
            "description",
            "version",
            "exposure",
            "author_id",
            "organization_id",
            "category_id",
            "category_name",
            "icon",
            "created_at",
            "updated_at",
        ]

    def get_category_name(self, blueprint: Blueprint) -> str | None:
        return blueprint.category.name if blueprint.category else None


class BlueprintDetailSerializer(BlueprintInfoSerializer):
    spec = serializers.JSONField(help_text="The guild spec, exactly as it was sent.")

    class Meta(BlueprintInfoSerializer.Meta):
        fields = [*BlueprintInfoSerializer.Meta.fields, "spec", "tags", "intro_msg"]


class BlueprintWriteSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=128)
    description = serializers.CharField(required=False, allow_blank=True, default="")
    version = serializers.CharField(max_length=64, required=False, allow_blank=True, default="")
    author_id = serializers.CharField(max_length=128)
    organization_id = serializers.CharField(max_length=128, required=False, allow_blank=True, allow_null=True,
                                            default="")
    exposure = serializers.ChoiceField(choices=Exposure.choices, required=False, default=Exposure.PRIVATE)
    category_id = serializers.PrimaryKeyRelatedField(
        queryset=Category.objects.all(), source="category", required=False, allow_null=True, default=None,
        pk_field=serializers.CharField(),
    )
    spec = JSONObjectField(help_text="A guild spec: name, description, agents, properties, routes.")
    tags = serializers.ListField(child=serializers.CharField(max_length=64), required=False, default=list)
    intro_msg = serializers.CharField(required=False, allow_blank=True, default="")
    icon = serializers.CharField(max_length=512, required=False, allow_blank=True, default="")


# --- launching a guild -----------------------------------------------------


class BlueprintLaunchSerializer(serializers.Serializer):
    # The guild's name is copied into its spec, whose names are at most 64 characters.
    guild_name = serializers.CharField(max_length=64)
    user_id = serializers.RegexField(ID_PATTERN, max_length=128, error_messages={
        "invalid": "must not contain spaces, ':' or '/' (it is part of topic names and socket URLs)."
    })
    org_id = serializers.CharField(max_length=128, allow_blank=True)
    description = serializers.CharField(required=False, allow_blank=True, allow_null=True)
