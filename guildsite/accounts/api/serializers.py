"""Account HTTP shapes. Secrets appear once: an API key's `key` in the answer that creates it."""

from __future__ import annotations

from rest_framework import serializers

from guildsite.accounts.models import ApiKey, Membership, Organization, Role, Scope
from guildsite.accounts.names import ORGANIZATION_ID_PATTERN, ORGANIZATION_ID_RULE, USER_ID_PATTERN, USER_ID_RULE


class TokenRequestSerializer(serializers.Serializer):
    username = serializers.CharField(max_length=150)
    password = serializers.CharField(max_length=4096, trim_whitespace=False, style={"input_type": "password"})


class TokenPairSerializer(serializers.Serializer):
    access = serializers.CharField(help_text="A JWT (HS256) for `Authorization: Bearer …` and `?token=` on sockets.")
    refresh = serializers.CharField(help_text="For POST /api/auth/token/refresh; revoked by POST /api/auth/logout.")
    expires_in = serializers.IntegerField(help_text="Seconds until the access token expires.")


class RefreshRequestSerializer(serializers.Serializer):
    refresh = serializers.CharField(max_length=256)


class AccessTokenSerializer(serializers.Serializer):
    access = serializers.CharField()
    expires_in = serializers.IntegerField()


class OrganizationRoleSerializer(serializers.Serializer):
    id = serializers.CharField()
    name = serializers.CharField()
    role = serializers.ChoiceField(choices=Role.choices)


class MeSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    username = serializers.CharField()
    email = serializers.CharField()
    is_staff = serializers.BooleanField()
    organizations = OrganizationRoleSerializer(many=True)


class UserCreateSerializer(serializers.Serializer):
    username = serializers.RegexField(USER_ID_PATTERN, error_messages={"invalid": f"a user id is {USER_ID_RULE}."})
    password = serializers.CharField(max_length=4096, trim_whitespace=False, style={"input_type": "password"})
    email = serializers.EmailField(required=False, allow_blank=True, default="")


class UserSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    username = serializers.CharField()
    email = serializers.CharField()
    is_staff = serializers.BooleanField()


class OrganizationCreateSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=128)
    id = serializers.RegexField(ORGANIZATION_ID_PATTERN, required=False,
                                error_messages={"invalid": f"an organisation id is {ORGANIZATION_ID_RULE}."},
                                help_text="Default: derived from the name (acme-labs, then acme-labs-2, …).")


class OrganizationSerializer(serializers.ModelSerializer):
    role = serializers.SerializerMethodField(help_text="Your role there.")

    class Meta:
        model = Organization
        fields = ["id", "name", "created_at", "role"]

    def get_role(self, organization: Organization) -> str | None:
        return self.context.get("roles", {}).get(organization.pk)


class MembershipSerializer(serializers.ModelSerializer):
    username = serializers.CharField(source="user.username")
    joined_at = serializers.DateTimeField(source="created_at")

    class Meta:
        model = Membership
        fields = ["username", "role", "joined_at"]


class MembershipCreateSerializer(serializers.Serializer):
    username = serializers.CharField(max_length=150)
    role = serializers.ChoiceField(choices=Role.choices, default=Role.MEMBER)


class MembershipChangeSerializer(serializers.Serializer):
    role = serializers.ChoiceField(choices=Role.choices)


class ApiKeyCreateSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=128)
    scopes = serializers.ListField(child=serializers.ChoiceField(choices=Scope.choices), min_length=1, max_length=2)
    expires_at = serializers.DateTimeField(required=False, allow_null=True, default=None)

    def validate(self, data: dict) -> dict:
        if "agent_registration_id" in self.initial_data:  # such a key would admit whoever made it as that agent
            raise serializers.ValidationError({"agent_registration_id": [
                "an external agent's key is made with it: POST /api/external-agents (organisation admins)"]})
        return data


class ApiKeySerializer(serializers.ModelSerializer):
    organization_id = serializers.CharField(read_only=True)
    created_by = serializers.CharField(source="created_by.username", read_only=True)

    class Meta:
        model = ApiKey
        fields = ["id", "name", "prefix", "scopes", "organization_id", "created_by", "agent_registration_id",
                  "expires_at", "last_used_at", "revoked_at", "created_at"]


class ApiKeyCreatedSerializer(ApiKeySerializer):
    key = serializers.CharField(help_text="The key itself: shown this once, store it now.")

    class Meta(ApiKeySerializer.Meta):
        fields = [*ApiKeySerializer.Meta.fields, "key"]
