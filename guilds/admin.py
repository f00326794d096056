"""Guild admin: guilds (status is the runtime's, so read-only) and the agents they run (view only)."""

from __future__ import annotations

import json
from typing import Any

from django import forms
from django.contrib import admin, messages
from django.http import HttpRequest
from django.urls import reverse
from django.utils import timezone
from django.utils.html import format_html

from catalog.forms import GuildSpecField
from guilds import dead_letters, schedules, webhooks
from guilds.external import presence, registry
from guilds.models import (
    Budget,
    DeadLetter,
    DeliveryStatus,
    ExternalAgent,
    ExternalCommand,
    Guild,
    GuildAgent,
    GuildMember,
    GuildStatus,
    Run,
    Schedule,
    Thread,
    ThreadMessage,
    Trigger,
    Webhook,
    WebhookDelivery,
)
from guilds.services import GuildStopped, guild_create, guild_relaunch, guild_stop
from guilds.spec import validate_guild_spec
from guildsite import permissions
from guildsite.accounts.admin import OrganizationScopedAdmin, OrganizationScopedInline
from guildsite.accounts.models import Role
from guildsite.accounts.services import AccountError
from guildsite.identity import Actor
from guildsite.redaction import SecretNotStored, redact_agent_spec, redact_spec, refuse_masks


def _pretty(value: Any) -> str:
    return format_html("<pre>{}</pre>", json.dumps(value, indent=2, ensure_ascii=False))


_AGENT_FIELDS = ["agent_id", "name", "kind", "class_name", "status", "status_detail", "updated_at"]


class GuildAgentInline(OrganizationScopedInline, admin.TabularInline):
    model = GuildAgent
    fields = _AGENT_FIELDS
    readonly_fields = _AGENT_FIELDS
    extra = 0
    can_delete = False
    show_change_link = True

    # The runtime creates and retires a guild's agents; the admin only shows them.
    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


class GuildMemberInline(OrganizationScopedInline, admin.TabularInline):
    model = GuildMember
    fields = ["user", "joined_at"]
    readonly_fields = ["joined_at"]
    extra = 0
    autocomplete_fields = ["user"]


class GuildAddForm(forms.ModelForm):
    spec = GuildSpecField(required=False)

    class Meta:
        model = Guild
        fields = ["name", "description", "blueprint", "organization", "launched_by", "spec"]

    actor: Actor  # set per request by GuildAdmin.get_form

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["organization"].required = True

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean()
        blueprint, organization = cleaned.get("blueprint"), cleaned.get("organization")
        launcher = cleaned.get("launched_by")
        if launcher is not None and organization is not None and not organization.memberships.filter(
                user=launcher, role__in=[Role.MEMBER, Role.ADMIN]).exists():
            self.add_error("launched_by", f"{launcher} is not a member of {organization.pk}.")
        if blueprint is not None and organization is not None:
            # As POST /catalog/blueprints/{id}/guilds decides: the blueprint's credentials stay where they may go.
            try:
                permissions.blueprint_launch_check(self.actor, blueprint, organization.pk)
            except permissions.PermissionProblem as exc:
                self.add_error("blueprint", str(exc))
        # Left empty, the spec comes from the chosen blueprint, as with POST /catalog/blueprints/{id}/guilds.
        if not cleaned.get("spec") and "spec" not in self.errors:
            blueprint = cleaned.get("blueprint")
            if blueprint is None:
                self.add_error("spec", "Give a spec, or choose a blueprint to take it from.")
            else:
                try:
                    cleaned["spec"] = GuildSpecField().clean(blueprint.spec)
                except forms.ValidationError as exc:
                    self.add_error("blueprint", exc)
        if cleaned.get("spec") and self.data.get("spec"):
            try:  # a spec copied from a page holds "***" where its secrets were: a new guild has none stored
                refuse_masks(cleaned["spec"])
            except SecretNotStored as exc:
                self.add_error("spec", str(exc))
        if cleaned.get("spec") and cleaned.get("organization") is not None:
            try:  # as guild_create checks: an external agent sits only in its own organisation's guilds
                registry.seats_checked(cleaned["spec"], cleaned["organization"].pk)
            except registry.SeatRefused as exc:
                self.add_error("spec" if self.data.get("spec") else "blueprint", str(exc))
        return cleaned


@admin.register(Guild)
class GuildAdmin(OrganizationScopedAdmin):
    list_display = ["name", "id", "status", "suspended", "organization", "launched_by", "blueprint", "created_at"]
    # Only what the (scoped) rows use: a filter must not list other organisations' names.
    list_filter = ["status", "suspended", ("organization", admin.RelatedOnlyFieldListFilter)]
    list_select_related = ["blueprint", "organization", "launched_by"]
    search_fields = ["name", "id"]
    date_hierarchy = "created_at"
    inlines = [GuildMemberInline, GuildAgentInline]
    autocomplete_fields = ["launched_by"]
    actions = ["stop_guilds", "relaunch_guilds"]
    _always_read_only = ["id", "dashboard_link", "status", "status_detail", "suspended", "suspended_at", "state_json",
                         "created_at", "updated_at", "started_at", "stopped_at"]

    def get_form(self, request: HttpRequest, obj: Guild | None = None, change: bool = False, **kwargs: Any):
        if obj is None:
            kwargs["form"] = type("GuildAddFormFor", (GuildAddForm,), {"actor": Actor(user=request.user)})
        return super().get_form(request, obj, change=change, **kwargs)

    def get_fields(self, request: HttpRequest, obj: Guild | None = None) -> list[str]:
        if obj is None:
            return list(GuildAddForm.Meta.fields)
        return ["name", "description", "blueprint", "organization", "launched_by", "spec_json",
                *self._always_read_only]

    def get_readonly_fields(self, request: HttpRequest, obj: Guild | None = None) -> list[str]:
        if obj is None:
            return []
        # A running guild's spec is what it was launched with; changing the row would not change the agents.
        # Its organisation and launcher are who may see and control it: not moved from here either.
        return ["blueprint", "organization", "launched_by", "spec_json", *self._always_read_only]

    @admin.display(description="dashboard")
    def dashboard_link(self, guild: Guild) -> str:
        return format_html('<a href="{}">Open its dashboard page</a>', reverse("dashboard-guild", args=[guild.pk]))

    @admin.display(description="spec")
    def spec_json(self, guild: Guild) -> str:
        return _pretty(redact_spec(guild.spec))

    @admin.display(description="state")
    def state_json(self, guild: Guild) -> str:
        return _pretty(guild.state)

    @admin.action(description="Stop the selected guilds (final)")
    def stop_guilds(self, request: HttpRequest, queryset) -> None:
        # The same service as POST /api/guilds/{id}/stop and the system socket's stopGuildRequest.
        for guild in queryset:
            try:
                permissions.guild_control_check(Actor(user=request.user), guild, doing="stopping a guild")
                guild_stop(guild_id=guild.id, user_id=request.user.get_username())
                self.message_user(request, f"{guild.name}: stopped.", messages.SUCCESS)
            except (GuildStopped, permissions.PermissionProblem) as exc:
                self.message_user(request, f"{guild.name}: {exc}", messages.WARNING)
            except Exception as exc:
                self.message_user(request, f"{guild.name}: stop failed: {exc}", messages.ERROR)

    @admin.action(description="Relaunch the selected guilds (agents gone after a restart, or ERROR)")
    def relaunch_guilds(self, request: HttpRequest, queryset) -> None:
        for guild in queryset:
            try:
                permissions.guild_control_check(Actor(user=request.user), guild, doing="relaunching a guild")
                started = guild_relaunch(guild_id=guild.id)
                text = "relaunching." if started else "already running here; nothing to do."
                self.message_user(request, f"{guild.name}: {text}", messages.SUCCESS)
            except (GuildStopped, permissions.PermissionProblem) as exc:
                self.message_user(request, f"{guild.name}: {exc}", messages.WARNING)

    def get_inlines(self, request: HttpRequest, obj: Guild | None) -> list:
        return self.inlines if obj is not None else []

    def save_model(self, request: HttpRequest, obj: Guild, form: forms.ModelForm, change: bool) -> None:
        if change:
            super().save_model(request, obj, form, change)
            return
        # New guilds go through the service, so they are launched like any other.
        data = form.cleaned_data
        blueprint = data.get("blueprint")
        guild = guild_create(
            spec=validate_guild_spec(data["spec"]),
            name=data["name"],
            launched_by=data.get("launched_by") or request.user,
            organization=data["organization"],
            description=data.get("description") or None,
            blueprint_id=blueprint.pk if blueprint else None,
        )
        obj.pk = guild.pk
        obj.refresh_from_db()
        obj._state.adding = False


@admin.register(GuildAgent)
class GuildAgentAdmin(OrganizationScopedAdmin):
    organization_lookup = "guild__organization"
    fields = ["guild", "agent_id", "name", "kind", "class_name", "status", "status_detail", "spec_json", "state_json",
              "created_at", "updated_at"]
    readonly_fields = fields

    @admin.display(description="spec")
    def spec_json(self, agent: GuildAgent) -> str:
        return _pretty(redact_agent_spec(agent.spec))

    @admin.display(description="state")
    def state_json(self, agent: GuildAgent) -> str:
        return _pretty(agent.state)
    list_display = ["name", "agent_id", "guild", "kind", "class_name", "status", "updated_at"]
    list_filter = ["kind", "status"]
    list_select_related = ["guild"]
    search_fields = ["name", "agent_id", "guild__name", "guild__id"]

    # View only: agents are the runtime's to create, change and retire.
    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(DeadLetter)
class DeadLetterAdmin(OrganizationScopedAdmin):
    """The guilds' dead letters: seen, redelivered to their agents, or dropped (as over REST)."""

    organization_lookup = "guild__organization"
    list_display = ["message_id", "guild", "agent_id", "attempts", "failed_at", "reason"]
    list_select_related = ["guild"]
    search_fields = ["guild__id", "guild__name", "agent_id", "reason"]
    fields = ["guild", "agent_id", "message_id", "attempts", "failed_at", "reason", "message_json"]
    readonly_fields = fields
    actions = ["redeliver"]

    @admin.display(description="message")
    def message_json(self, letter: DeadLetter) -> str:
        return _pretty(letter.message)

    def has_add_permission(self, request: HttpRequest, *args: Any) -> bool:
        return False

    @admin.action(description="Redeliver the selected messages to their agents")
    def redeliver(self, request: HttpRequest, queryset) -> None:
        for letter in queryset.select_related("guild"):
            try:
                permissions.guild_control_check(Actor(user=request.user), letter.guild, doing="redelivering")
                dead_letters.dead_letter_redeliver(letter=letter)
                self.message_user(request, f"{letter.message_id}: redelivered to {letter.agent_id}.", messages.SUCCESS)
            except (dead_letters.NotRedeliverable, permissions.PermissionProblem) as exc:
                self.message_user(request, f"{letter.message_id}: {exc}", messages.WARNING)


class _ReadOnly:
    """Threads, their messages and runs are written by LLM agents; the admin shows them (and may delete threads)."""

    def has_add_permission(self, request: HttpRequest, *args: Any) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


class ThreadMessageInline(_ReadOnly, OrganizationScopedInline, admin.TabularInline):
    model = ThreadMessage
    fields = ["role", "content", "tool_calls", "tool_call_id", "input_tokens", "output_tokens", "bus_message_id", "run",
              "created_at"]
    readonly_fields = fields
    extra = 0
    can_delete = False


@admin.register(Thread)
class ThreadAdmin(_ReadOnly, OrganizationScopedAdmin):
    organization_lookup = "guild__organization"
    list_display = ["id", "guild", "agent_id", "requester", "conversation_id", "title", "updated_at"]
    list_select_related = ["guild"]
    search_fields = ["id", "guild__id", "guild__name", "agent_id", "requester", "conversation_id", "title"]
    fields = ["guild", "agent_id", "requester", "user", "organization", "conversation_id", "title", "created_at",
              "updated_at"]
    readonly_fields = fields
    inlines = [ThreadMessageInline]


@admin.register(Run)
class RunAdmin(_ReadOnly, OrganizationScopedAdmin):
    organization_lookup = "guild__organization"
    list_display = ["id", "guild", "agent_id", "trigger", "requester", "status", "model", "input_tokens",
                    "output_tokens", "cost_usd", "duration_ms", "created_at"]
    list_filter = ["status", "trigger"]
    list_select_related = ["guild"]
    search_fields = ["id", "guild__id", "guild__name", "agent_id", "requester", "model", "error"]
    fields = ["guild", "agent_id", "thread", "trigger", "requester", "status", "message_id", "model", "created_at", "started_at",
              "finished_at", "duration_ms", "time_to_first_token_ms", "input_tokens", "output_tokens",
              "cached_tokens", "cost_usd", "error", "tool_calls", "notes"]
    readonly_fields = fields

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(Schedule)
class ScheduleAdmin(OrganizationScopedAdmin):
    """Schedules are written over REST (checked there); here they are seen, paused and resumed."""

    organization_lookup = "guild__organization"
    list_display = ["__str__", "guild", "agent_id", "misfire_policy", "enabled", "next_run_at", "last_run_at"]
    list_filter = ["enabled", "misfire_policy"]
    list_select_related = ["guild"]
    search_fields = ["id", "name", "guild__id", "guild__name", "agent_id", "cron"]
    fields = ["guild", "name", "agent_id", "cron", "timezone", "format", "payload", "misfire_policy", "enabled",
              "disabled_reason", "next_run_at", "last_run_at", "last_run_id", "created_by", "created_at", "updated_at"]
    readonly_fields = fields
    actions = ["pause", "resume"]

    def has_add_permission(self, request: HttpRequest, *args: Any) -> bool:
        return False

    @admin.action(description="Pause the selected schedules")
    def pause(self, request: HttpRequest, queryset) -> None:
        paused = queryset.update(enabled=False, next_run_at=None, disabled_reason="", updated_at=timezone.now())
        self.message_user(request, f"{paused} schedule(s) paused.", messages.SUCCESS)

    @admin.action(description="Resume the selected schedules (their next firing from now)")
    def resume(self, request: HttpRequest, queryset) -> None:
        for schedule in queryset.select_related("guild"):
            if schedule.guild.status == GuildStatus.STOPPED:
                self.message_user(request, f"{schedule}: its guild is stopped.", messages.WARNING)
                continue
            schedule.enabled, schedule.disabled_reason = True, ""
            schedules.schedule_next_run(schedule)
            schedule.save(update_fields=["enabled", "disabled_reason", "next_run_at", "updated_at"])
            self.message_user(request, f"{schedule}: next firing {schedule.next_run_at:%Y-%m-%d %H:%M} UTC.",
                              messages.SUCCESS)


@admin.register(Trigger)
class TriggerAdmin(OrganizationScopedAdmin):
    """Triggers are made over REST (their secret shown once there); here they are seen, enabled and disabled."""

    organization_lookup = "guild__organization"
    list_display = ["__str__", "guild", "agent_id", "format", "use_site_secret", "enabled", "last_event_at"]
    list_filter = ["enabled", "use_site_secret"]
    list_select_related = ["guild"]
    search_fields = ["id", "guild__id", "guild__name", "agent_id"]
    fields = ["guild", "agent_id", "format", "prompt_template", "use_site_secret", "enabled",
              "previous_secret_expires_at", "last_event_at", "created_by", "created_at", "updated_at"]
    readonly_fields = fields
    actions = ["enable", "disable"]

    def has_add_permission(self, request: HttpRequest, *args: Any) -> bool:
        return False

    @admin.action(description="Enable the selected triggers")
    def enable(self, request: HttpRequest, queryset) -> None:
        self.message_user(request, f"{queryset.update(enabled=True, updated_at=timezone.now())} trigger(s) enabled.",
                          messages.SUCCESS)

    @admin.action(description="Disable the selected triggers")
    def disable(self, request: HttpRequest, queryset) -> None:
        self.message_user(request, f"{queryset.update(enabled=False, updated_at=timezone.now())} trigger(s) disabled.",
                          messages.SUCCESS)


@admin.register(Webhook)
class WebhookAdmin(OrganizationScopedAdmin):
    """Outbound webhooks are made over REST (their secret shown once there); here they are seen and paused."""

    organization_lookup = "guild__organization"
    list_display = ["__str__", "guild", "events", "agent_id", "enabled", "created_at"]
    list_filter = ["enabled"]
    list_select_related = ["guild"]
    search_fields = ["id", "guild__id", "guild__name", "url"]
    fields = ["guild", "url", "events", "agent_id", "enabled", "created_by", "created_at", "updated_at"]
    readonly_fields = ["guild", "url", "events", "agent_id", "created_by", "created_at", "updated_at"]

    def has_add_permission(self, request: HttpRequest, *args: Any) -> bool:
        return False


@admin.register(WebhookDelivery)
class WebhookDeliveryAdmin(OrganizationScopedAdmin):
    """The delivery log: every attempt's outcome; dead-lettered ones sent again with "redeliver"."""

    organization_lookup = "webhook__guild__organization"
    list_display = ["event_type", "webhook", "status", "attempts", "last_status_code", "next_attempt_at", "created_at"]
    list_filter = ["status", "event_type"]
    list_select_related = ["webhook"]
    search_fields = ["id", "event_id", "subject_id", "webhook__id", "webhook__guild__id"]
    fields = ["webhook", "event_type", "event_id", "subject_id", "status", "attempts", "next_attempt_at",
              "last_attempt_at", "last_status_code", "last_error", "redelivery_of", "created_at", "delivered_at", "body"]
    readonly_fields = fields
    actions = ["redeliver"]

    def has_add_permission(self, request: HttpRequest, *args: Any) -> bool:
        return False

    @admin.action(description="Redeliver the selected deliveries (their event again, as new deliveries)")
    def redeliver(self, request: HttpRequest, queryset) -> None:
        sent = 0
        for delivery in queryset.select_related("webhook").exclude(status=DeliveryStatus.PENDING):
            webhooks.redeliver(delivery=delivery)
            sent += 1
        self.message_user(request, f"{sent} delivery(ies) sent again; pending ones are left to their retries.",
                          messages.SUCCESS)


@admin.register(Budget)
class BudgetAdmin(admin.ModelAdmin):
    """Every budget, for superusers (organisations' admins set theirs over REST: /api/…/budget)."""

    list_display = ["__str__", "monthly_usd", "monthly_tokens", "warned_month", "updated_at"]
    fields = ["organization", "guild", "monthly_usd", "monthly_tokens", "warned_month"]
    readonly_fields = ["warned_month"]
    raw_id_fields = ["guild"]

    def has_module_permission(self, request: HttpRequest) -> bool:
        return request.user.is_active and request.user.is_superuser

    def has_view_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return self.has_module_permission(request)

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return self.has_module_permission(request)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return self.has_module_permission(request)

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return self.has_module_permission(request)


class ExternalAgentAddForm(forms.ModelForm):
    class Meta:
        model = ExternalAgent
        fields = ["organization", "name"]

    def clean(self) -> dict[str, Any]:
        data = super().clean()
        organization = data.get("organization")
        if organization is not None:
            try:
                permissions.external_agent_manage_check(Actor(user=self.acting_user), organization.pk,
                                                        doing="registering an external agent")
            except permissions.PermissionProblem as exc:
                raise forms.ValidationError(str(exc)) from None
        return data


@admin.register(ExternalAgent)
class ExternalAgentAdmin(OrganizationScopedAdmin):
    """External agents (seed 003): registered here or over REST (the key shown once), seen with their status, and
    deleted (their keys stop working)."""

    list_display = ["name", "organization", "status_now", "version", "hostname", "last_seen_at", "created_at"]
    list_select_related = ["organization"]
    search_fields = ["id", "name", "hostname"]
    shown = ["organization", "name", "status_now", "version", "capabilities", "hostname", "platform", "metrics",
             "last_seen_at", "messages_waiting", "created_by", "created_at"]

    def get_form(self, request: HttpRequest, obj: Any = None, **kwargs: Any):
        if obj is None:
            kwargs["form"] = type("ExternalAgentAddFormFor", (ExternalAgentAddForm,), {"acting_user": request.user})
        return super().get_form(request, obj, **kwargs)

    def get_fields(self, request: HttpRequest, obj: Any = None) -> list[str]:
        return ["organization", "name"] if obj is None else self.shown

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> list[str]:
        return [] if obj is None else self.shown

    @admin.display(description="status")
    def status_now(self, agent: ExternalAgent) -> str:
        return presence.effective_status(agent)

    @admin.display(description="messages waiting")
    def messages_waiting(self, agent: ExternalAgent) -> int:
        return agent.deliveries.count()

    def save_model(self, request: HttpRequest, obj: ExternalAgent, form: forms.ModelForm, change: bool) -> None:
        if change:
            return  # nothing here is edited: it is what the agent said of itself
        try:
            agent, key = registry.external_agent_register(organization=obj.organization, created_by=request.user,
                                                          name=obj.name)
        except (registry.TooMany, AccountError) as exc:
            self.message_user(request, f"Not registered: {exc}", messages.ERROR)
            return
        obj.pk = agent.pk
        obj.refresh_from_db()
        obj._state.adding = False
        self.message_user(request, f"{agent.name} registered. Its key, shown this once: {key}", messages.WARNING)

    def delete_model(self, request: HttpRequest, obj: ExternalAgent) -> None:
        registry.external_agent_delete(agent=obj)

    def delete_queryset(self, request: HttpRequest, queryset) -> None:
        for agent in queryset:
            registry.external_agent_delete(agent=agent)


@admin.register(ExternalCommand)
class ExternalCommandAdmin(OrganizationScopedAdmin):
    """Commands sent to external agents (over REST) and their results."""

    organization_lookup = "agent__organization"
    list_display = ["type", "agent", "state", "success", "exit_code", "created_at", "finished_at"]
    list_filter = ["state", "is_cancellation"]
    list_select_related = ["agent"]
    search_fields = ["id", "agent__id", "agent__name", "type"]
    fields = ["agent", "type", "content", "parameters", "timeout_s", "is_cancellation", "cancels", "state", "success",
              "output", "error_message", "exit_code", "execution_time_ms", "created_by", "created_at", "expires_at",
              "sent_at", "acknowledged_at", "finished_at"]
    readonly_fields = fields

    def has_add_permission(self, request: HttpRequest, *args: Any) -> bool:
        return False
