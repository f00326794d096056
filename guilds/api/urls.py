"""Guild routes under /api/ (the original system's REST prefix)."""

from __future__ import annotations

from guilds.api import (
    budgets,
    control,
    dead_letters,
    external,
    messages,
    runs,
    schedules,
    threads,
    triggers,
    views,
    webhooks,
)
from guildsite.api_common import api_path

urlpatterns = [
    *api_path("guilds", views.GuildListApi, "guild-list"),
    *api_path("guilds/<str:guild_id>", views.GuildDetailApi, "guild-detail"),
    *api_path("guilds/<str:guild_id>/messages", messages.GuildMessagesApi, "guild-messages"),
    *api_path("guilds/<str:guild_id>/stop", control.GuildStopApi, "guild-stop"),
    *api_path("guilds/<str:guild_id>/budget", budgets.GuildBudgetApi, "guild-budget"),
    *api_path("guilds/<str:guild_id>/schedules", schedules.GuildSchedulesApi, "guild-schedules"),
    *api_path("guilds/<str:guild_id>/triggers", triggers.GuildTriggersApi, "guild-triggers"),
    *api_path("guilds/<str:guild_id>/webhooks", webhooks.GuildWebhooksApi, "guild-webhooks"),
    *api_path("organizations/<str:organization_id>/budget", budgets.OrganizationBudgetApi, "organization-budget"),
    *api_path("guilds/<str:guild_id>/relaunch", control.GuildRelaunchApi, "guild-relaunch"),
    *api_path("guilds/<str:guild_id>/dead-letters", dead_letters.DeadLettersApi, "guild-dead-letters"),
    *api_path("guilds/<str:guild_id>/dead-letters/<str:message_id>/redeliver", dead_letters.DeadLetterRedeliverApi,
              "guild-dead-letter-redeliver"),
    *api_path("guilds/<str:guild_id>/files/", control.GuildFilesApi, "guild-files"),
    *api_path("guilds/<str:guild_id>/files/<str:name>", control.GuildFileApi, "guild-file"),
    *api_path("guilds/<str:guild_id>/<str:user_id>/messages", control.UserMessagesApi, "guild-user-messages"),
    # After the user's messages: a user may be called "dead-letters", a message id is digits.
    *api_path("guilds/<str:guild_id>/dead-letters/<str:message_id>", dead_letters.DeadLetterApi, "guild-dead-letter"),
    *api_path("threads", threads.ThreadListApi, "thread-list"),
    *api_path("threads/<str:thread_id>", threads.ThreadDetailApi, "thread-detail"),
    *api_path("threads/<str:thread_id>/messages", threads.ThreadMessagesApi, "thread-messages"),
    *api_path("schedules/<str:schedule_id>", schedules.ScheduleApi, "schedule-detail"),
    *api_path("schedules/<str:schedule_id>/run", schedules.ScheduleRunApi, "schedule-run"),
    *api_path("triggers/<str:trigger_id>", triggers.TriggerApi, "trigger-detail"),
    *api_path("triggers/<str:trigger_id>/rotate-secret", triggers.TriggerRotateSecretApi, "trigger-rotate-secret"),
    *api_path("triggers/<str:trigger_id>/events", triggers.TriggerEventsApi, "trigger-events"),
    *api_path("webhooks/<str:webhook_id>", webhooks.WebhookApi, "webhook-detail"),
    *api_path("webhooks/<str:webhook_id>/deliveries", webhooks.WebhookDeliveriesApi, "webhook-deliveries"),
    *api_path("webhook-deliveries/<str:delivery_id>/redeliver", webhooks.DeliveryRedeliverApi,
              "webhook-delivery-redeliver"),
    *api_path("external-agents", external.ExternalAgentsApi, "external-agent-list"),
    *api_path("external-agents/<str:agent_id>", external.ExternalAgentApi, "external-agent-detail"),
    *api_path("external-agents/<str:agent_id>/commands", external.ExternalAgentCommandsApi, "external-agent-commands"),
    *api_path("commands/<str:command_id>", external.CommandApi, "command-detail"),
    *api_path("runs", runs.RunListApi, "run-list"),
    *api_path("runs/<str:run_id>", runs.RunDetailApi, "run-detail"),
    *api_path("runs/<str:run_id>/cancel", runs.RunCancelApi, "run-cancel"),
]
