"""Admin for accounts, and the organisation scoping every organisation-owned admin page uses.

Superusers see everything. A staff user who is not a superuser sees, changes and acts on only the
rows of organisations where they are admin (guildsite.permissions.admin_organization_ids); Django's
per-model permissions are not what grants this.
"""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin, messages
from django.contrib.auth.admin import UserAdmin
from django.contrib.auth.forms import AdminUserCreationForm
from django.contrib.auth.models import User
from django.db.models import QuerySet
from django.http import HttpRequest

from catalog.models import Blueprint, Category
from guildsite import permissions
from guildsite.accounts import services
from guildsite.accounts.models import ApiKey, Membership, Organization, RefreshToken, Role
from guildsite.accounts.names import USER_ID_RULE, is_user_id
from guildsite.identity import Actor


def admin_scope(request: HttpRequest) -> list[str] | None:
    """None: every organisation; else the ids of those the signed-in staff user administers."""
    return permissions.admin_organization_ids(Actor(user=request.user))


def related_choices(request: HttpRequest, model: type) -> QuerySet | None:
    """What a scoped staff user may pick of another organisation-owned model (None: no limit here)."""
    actor = Actor(user=request.user)
    if model is Category:
        return permissions.category_queryset(actor, Category.objects.all())
    if model is Blueprint:
        return permissions.blueprint_queryset(actor, Blueprint.objects.all())
    return None


class OrganizationScopedAdmin(admin.ModelAdmin):
    """Rows belong to an organisation through `organization_lookup` (a field path to its id)."""

    organization_lookup = "organization"

    def _in_scope(self, request: HttpRequest, obj: Any = None) -> bool:
        if not request.user.is_active or not request.user.is_staff:
            return False
        scope = admin_scope(request)
        if scope is None:
            return True
        if obj is None:
            return bool(scope)
        return self._organization_of(obj) in scope

    def _organization_of(self, obj: Any) -> str | None:
        value: Any = obj
        for part in self.organization_lookup.split("__"):
            value = getattr(value, part, None) if part != "pk" else value.pk
        return value.pk if isinstance(value, Organization) else value

    def get_queryset(self, request: HttpRequest) -> QuerySet:
        queryset = super().get_queryset(request)
        scope = admin_scope(request)
        return queryset if scope is None else queryset.filter(**{f"{self.organization_lookup}__in": scope})

    def formfield_for_foreignkey(self, db_field: Any, request: HttpRequest, **kwargs: Any) -> Any:
        scope = admin_scope(request)
        if scope is not None:
            if db_field.related_model is Organization:
                # Only their organisations, and one is required: a row without one would leave their scope.
                kwargs["queryset"] = Organization.objects.filter(pk__in=scope)
                kwargs["required"] = True
            else:
                choices = related_choices(request, db_field.related_model)
                if choices is not None:
                    kwargs["queryset"] = choices
        return super().formfield_for_foreignkey(db_field, request, **kwargs)

    def formfield_for_manytomany(self, db_field: Any, request: HttpRequest, **kwargs: Any) -> Any:
        scope = admin_scope(request)
        if scope is not None and db_field.related_model is Organization:
            kwargs["queryset"] = Organization.objects.filter(pk__in=scope)  # other organisations stay unnamed
        return super().formfield_for_manytomany(db_field, request, **kwargs)

    def has_module_permission(self, request: HttpRequest) -> bool:
        return self._in_scope(request)

    def has_view_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return self._in_scope(request, obj)

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return self._in_scope(request, obj)

    def has_add_permission(self, request: HttpRequest, *args: Any) -> bool:
        return self._in_scope(request)

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return self._in_scope(request, obj)


class OrganizationScopedInline:
    """An inline on an organisation-scoped page: whoever may open the page may use it (the page is scoped)."""

    def _allowed(self, request: HttpRequest) -> bool:
        scope = admin_scope(request)
        return request.user.is_active and request.user.is_staff and (scope is None or bool(scope))

    def has_view_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return self._allowed(request)

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return self._allowed(request)

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return self._allowed(request)

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return self._allowed(request)


def _another_admin(membership: Membership) -> bool:
    return Membership.objects.filter(organization=membership.organization_id, role=Role.ADMIN).exclude(
        pk=membership.pk).exists()


class MembershipsKeepAnAdmin(forms.BaseInlineFormSet):
    """An organisation keeps at least one admin, whatever is changed or deleted on its page."""

    def clean(self) -> None:
        super().clean()
        kept = [form.cleaned_data for form in self.forms
                if form.cleaned_data and not form.cleaned_data.get("DELETE")]
        if self.instance.pk and not any(data.get("role") == Role.ADMIN for data in kept):
            raise forms.ValidationError("An organisation keeps at least one admin.")


class MembershipInline(OrganizationScopedInline, admin.TabularInline):
    model = Membership
    formset = MembershipsKeepAnAdmin
    extra = 0
    autocomplete_fields = ["user"]


@admin.register(Organization)
class OrganizationAdmin(OrganizationScopedAdmin):
    organization_lookup = "pk"
    list_display = ["id", "name", "created_at"]
    search_fields = ["id", "name"]
    inlines = [MembershipInline]

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> list[str]:
        return ["id", "created_at"] if obj is not None else ["created_at"]

    def has_add_permission(self, request: HttpRequest, *args: Any) -> bool:
        return request.user.is_superuser  # others create theirs over the API and become its admin


class MembershipForm(forms.ModelForm):
    class Meta:
        model = Membership
        fields = ["user", "organization", "role"]

    def clean_role(self) -> str:
        role = self.cleaned_data["role"]
        was = self.instance
        if was.pk and was.role == Role.ADMIN and role != Role.ADMIN and not _another_admin(was):
            raise forms.ValidationError(f"{was.user} is the last admin of {was.organization_id}.")
        return role


@admin.register(Membership)
class MembershipAdmin(OrganizationScopedAdmin):
    """Changes keep the services' rule: an organisation keeps at least one admin."""

    form = MembershipForm
    list_display = ["user", "organization", "role", "created_at"]
    list_filter = ["role"]
    list_select_related = ["user", "organization"]
    search_fields = ["user__username", "organization__id", "organization__name"]
    autocomplete_fields = ["user"]

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> list[str]:
        return ["user", "organization"] if obj is not None else []  # moving a membership could strand an admin

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        if obj is not None and obj.role == Role.ADMIN and not _another_admin(obj):
            return False
        return super().has_delete_permission(request, obj)

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[Membership]) -> None:
        for membership in queryset.select_related("user"):
            try:
                services.membership_remove(membership=membership)
            except services.LastAdmin as exc:
                self.message_user(request, f"Kept: {exc}.", messages.ERROR)


@admin.register(ApiKey)
class ApiKeyAdmin(OrganizationScopedAdmin):
    """Keys are made over the API (the key is shown once, there); here they are seen and revoked."""

    list_display = ["name", "prefix", "organization", "created_by", "scopes", "expires_at", "last_used_at", "revoked_at"]
    list_filter = ["revoked_at"]
    list_select_related = ["organization", "created_by"]
    search_fields = ["name", "prefix", "organization__id", "created_by__username"]
    fields = ["name", "prefix", "organization", "created_by", "scopes", "agent_registration_id", "expires_at",
              "last_used_at", "revoked_at", "created_at"]
    readonly_fields = ["prefix", "organization", "created_by", "scopes", "agent_registration_id", "last_used_at",
                       "revoked_at", "created_at"]
    actions = ["revoke"]

    def has_add_permission(self, request: HttpRequest, *args: Any) -> bool:
        return False

    @admin.action(description="Revoke the selected API keys")
    def revoke(self, request: HttpRequest, queryset: QuerySet[ApiKey]) -> None:
        for key in queryset:
            services.api_key_revoke(key=key)
        self.message_user(request, f"Revoked {queryset.count()} key(s).", messages.SUCCESS)


@admin.register(RefreshToken)
class RefreshTokenAdmin(admin.ModelAdmin):
    list_display = ["user", "created_at", "expires_at", "revoked_at"]
    list_select_related = ["user"]
    search_fields = ["user__username"]
    readonly_fields = ["user", "created_at", "expires_at"]
    exclude = ["token_hash"]

    def has_module_permission(self, request: HttpRequest) -> bool:
        return request.user.is_superuser

    def has_view_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return request.user.is_superuser

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False


class GuildsiteUserCreationForm(AdminUserCreationForm):
    def clean_username(self) -> str:
        username = super().clean_username()
        if not is_user_id(username):
            raise forms.ValidationError(f"A user id is {USER_ID_RULE}.")
        return username


class GuildsiteUserAdmin(UserAdmin):
    add_form = GuildsiteUserCreationForm


admin.site.unregister(User)
admin.site.register(User, GuildsiteUserAdmin)
