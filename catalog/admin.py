"""Catalog admin: agent classes, categories, and blueprints whose spec is edited as checked JSON."""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin
from django.db.models import Count, QuerySet
from django.http import HttpRequest

from catalog.forms import GuildSpecField
from catalog.models import AgentEntry, Blueprint, Category
from guilds.runtime.registry import AgentClassError, resolve_agent_class
from guildsite.accounts.admin import OrganizationScopedAdmin
from guildsite.redaction import SecretNotStored, redact_spec, restore_secrets


def _json_or(value: Any, empty: Any, kind: type, described: str) -> Any:
    if value is None or value == "":
        return empty
    if not isinstance(value, kind):
        raise forms.ValidationError(f"Must be {described}.")
    return value


class AgentEntryForm(forms.ModelForm):
    class Meta:
        model = AgentEntry
        fields = ["qualified_class_name", "agent_name", "description", "properties_schema", "dependencies",
                  "message_handlers"]

    def clean_qualified_class_name(self) -> str:
        name = self.cleaned_data["qualified_class_name"].strip()
        try:
            resolve_agent_class(name)
        except AgentClassError as exc:
            raise forms.ValidationError(str(exc)) from None
        return name

    # A cleared JSON textarea means "empty", not a NULL the columns do not allow.
    def clean_properties_schema(self) -> dict:
        return _json_or(self.cleaned_data.get("properties_schema"), {}, dict, "a JSON object")

    def clean_dependencies(self) -> list:
        return _json_or(self.cleaned_data.get("dependencies"), [], list, "a JSON list")

    def clean_message_handlers(self) -> dict:
        return _json_or(self.cleaned_data.get("message_handlers"), {}, dict, "a JSON object")


@admin.register(AgentEntry)
class AgentEntryAdmin(admin.ModelAdmin):
    """Agent classes are site-wide code: superusers and staff with Django's model permissions manage them."""

    form = AgentEntryForm
    list_display = ["qualified_class_name", "agent_name", "updated_at"]
    search_fields = ["qualified_class_name", "agent_name", "description"]
    readonly_fields = ["created_at", "updated_at"]


@admin.register(Category)
class CategoryAdmin(OrganizationScopedAdmin):
    list_display = ["name", "organization", "description", "blueprint_count", "id"]
    list_filter = [("organization", admin.RelatedOnlyFieldListFilter)]
    search_fields = ["name", "description"]
    readonly_fields = ["id", "created_at"]

    def get_queryset(self, request: HttpRequest) -> QuerySet[Category]:
        return super().get_queryset(request).annotate(blueprint_total=Count("blueprints"))

    @admin.display(description="blueprints", ordering="blueprint_total")
    def blueprint_count(self, category: Category) -> int:
        return category.blueprint_total


class BlueprintForm(forms.ModelForm):
    spec = GuildSpecField()

    class Meta:
        model = Blueprint
        fields = ["name", "description", "version", "category", "exposure", "author", "organization", "spec",
                  "tags", "intro_msg", "icon"]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if not self.instance._state.adding:
            # The spec's secrets are shown as "***"; sent back unchanged, they keep their stored values.
            self.initial["spec"] = redact_spec(self.instance.spec)

    def clean_spec(self) -> Any:
        spec = self.cleaned_data.get("spec")
        if self.instance._state.adding:
            return spec
        try:
            return restore_secrets(spec, Blueprint.objects.get(pk=self.instance.pk).spec)
        except SecretNotStored as exc:
            raise forms.ValidationError(str(exc)) from None

    def clean_tags(self) -> list:
        tags = _json_or(self.cleaned_data.get("tags"), [], list, 'a JSON list of strings, e.g. ["demo", "echo"]')
        if not all(isinstance(tag, str) for tag in tags):
            raise forms.ValidationError('Must be a JSON list of strings, e.g. ["demo", "echo"].')
        return tags


@admin.register(Blueprint)
class BlueprintAdmin(OrganizationScopedAdmin):
    form = BlueprintForm
    list_display = ["name", "version", "category", "author", "organization", "exposure", "updated_at"]
    # Only what the (scoped) rows use: a filter must not list other organisations' names.
    list_filter = ["exposure", ("category", admin.RelatedOnlyFieldListFilter),
                   ("organization", admin.RelatedOnlyFieldListFilter)]
    list_select_related = ["category", "author", "organization"]
    search_fields = ["name", "description", "author__username", "organization__id", "id"]
    autocomplete_fields = ["author"]
    filter_horizontal = ["shared_with"]
    readonly_fields = ["id", "created_at", "updated_at"]
    fieldsets = [
        (None, {"fields": ["id", "name", "description", "version", "category", "exposure"]}),
        ("Ownership", {"fields": ["author", "organization", "shared_with"]}),
        ("Guild spec", {"fields": ["spec"]}),
        ("Presentation", {"fields": ["tags", "intro_msg", "icon"], "classes": ["collapse"]}),
        ("Timestamps", {"fields": ["created_at", "updated_at"]}),
    ]
