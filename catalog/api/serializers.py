"""The catalog's HTTP shapes. Input serializers only check types; the rules live in catalog.services."""

from __future__ import annotations

from typing import Any

from rest_framework import serializers

from catalog.models import AgentEntry, Blueprint, Category, Exposure
from catalog.needs import blueprint_needs
from guildsite import permissions
from guildsite.accounts.names import USER_ID_PATTERN, USER_ID_RULE
from guildsite.redaction import redact_spec


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
    organization_id = serializers.CharField(allow_null=True, read_only=True, help_text="null: site-wide.")

    class Meta:
        model = Category
        fields = ["id", "name", "description", "organization_id"]


class CategoryCreateSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=128)
    description = serializers.CharField(required=False, allow_blank=True, default="", max_length=10_000)
    organization_id = serializers.CharField(required=False, allow_null=True, allow_blank=True, default=None,
                                            max_length=63, help_text="Leave out for a site-wide category (staff).")


# --- blueprints ------------------------------------------------------------


class BlueprintInfoSerializer(serializers.ModelSerializer):
    """A blueprint in a list: everything but the spec."""

    category_id = serializers.CharField(allow_null=True, read_only=True)
    category_name = serializers.SerializerMethodField()
    author_id = serializers.SerializerMethodField(help_text="The author's user id (username).")
    organization_id = serializers.CharField(allow_null=True, read_only=True)
    needs = serializers.SerializerMethodField(
        help_text='What launching it needs beyond the site\'s defaults: `["redis"]` when its spec names the Redis '
                  "messaging backend.")

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
            "needs",
            "created_at",
            "updated_at",
        ]

    def get_needs(self, blueprint: Blueprint) -> list[str]:
        return blueprint_needs(blueprint.spec)

    def get_category_name(self, blueprint: Blueprint) -> str | None:
        return blueprint.category.name if blueprint.category else None

    def get_author_id(self, blueprint: Blueprint) -> str | None:
        return blueprint.author.get_username() if blueprint.author else None


class BlueprintDetailSerializer(BlueprintInfoSerializer):
    spec = serializers.SerializerMethodField(help_text='The guild spec as it was sent, its secrets shown as "***".')
    shared_with = serializers.SerializerMethodField(help_text="Organisations a shared blueprint is shared with.")

    class Meta(BlueprintInfoSerializer.Meta):
        fields = [*BlueprintInfoSerializer.Meta.fields, "spec", "tags", "intro_msg", "shared_with"]

    def get_spec(self, blueprint: Blueprint) -> dict[str, Any]:
        return redact_spec(blueprint.spec)

    def get_shared_with(self, blueprint: Blueprint) -> list[str]:
        """All of them for those who may change the blueprint; for other readers only their own organisations
        (who else it is shared with is not theirs to know)."""
        shared = sorted(blueprint.shared_with.values_list("pk", flat=True))
        actor = self.context.get("actor")
        if actor is None:
            return shared
        try:
            permissions.blueprint_change_check(actor, blueprint)
            return shared
        except permissions.PermissionProblem:
            return [organization for organization in shared if organization in permissions.roles(actor)]


class BlueprintWriteSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=128)
    description = serializers.CharField(required=False, allow_blank=True, default="", max_length=10_000)
    version = serializers.CharField(max_length=64, required=False, allow_blank=True, default="")
    author_id = serializers.CharField(max_length=128, required=False, allow_null=True, default=None, help_text=(
        "Development only: the author, trusted. With authentication on the author is the caller."))
    organization_id = serializers.CharField(max_length=63, required=False, allow_blank=True, allow_null=True,
                                            default=None, help_text="Default: your first organisation.")
    exposure = serializers.ChoiceField(choices=Exposure.choices, required=False, default=Exposure.PRIVATE)
    category_id = serializers.PrimaryKeyRelatedField(
        queryset=Category.objects.all(), source="category", required=False, allow_null=True, default=None,
        pk_field=serializers.CharField(),
    )
    spec = JSONObjectField(help_text="A guild spec: name, description, agents, properties, routes.")
    tags = serializers.ListField(child=serializers.CharField(max_length=64), required=False, default=list,
                                 max_length=100)
    intro_msg = serializers.CharField(required=False, allow_blank=True, default="", max_length=10_000)
    icon = serializers.CharField(max_length=512, required=False, allow_blank=True, default="")


# --- launching a guild -----------------------------------------------------


class BlueprintLaunchSerializer(serializers.Serializer):
    # The guild's name is copied into its spec, whose names are at most 64 characters.
    guild_name = serializers.CharField(max_length=64)
    user_id = serializers.RegexField(USER_ID_PATTERN, error_messages={"invalid": f"a user id is {USER_ID_RULE}."},
                                     help_text="The launcher: with authentication on, the caller's username.")
    org_id = serializers.CharField(max_length=63, allow_blank=True,
                                   help_text="The organisation to launch into; empty: your first organisation.")
    description = serializers.CharField(required=False, allow_blank=True, allow_null=True, max_length=10_000)


class ShareSerializer(serializers.Serializer):
    organization_id = serializers.CharField(max_length=63)
