"""Guild state in the database: the guild, its status, and the agents it runs."""

from __future__ import annotations

from django.conf import settings
from django.db import models

from guilds.sender_ids import SCHEDULE_SENDER_PREFIX, TRIGGER_SENDER_PREFIX
from guildsite.accounts.models import Organization
from guildsite.public_ids import new_public_id


class GuildStatus(models.TextChoices):
    REQUESTED = "REQUESTED", "Requested"
    PENDING_LAUNCH = "PENDING_LAUNCH", "Pending launch"
    STARTING = "STARTING", "Starting"
    RUNNING = "RUNNING", "Running"
    WARNING = "WARNING", "Warning"
    ERROR = "ERROR", "Error"
    STOPPED = "STOPPED", "Stopped"


class Guild(models.Model):
    id = models.CharField(primary_key=True, max_length=64, default=new_public_id, editable=False)
    name = models.CharField(max_length=128)
    description = models.TextField(blank=True, default="")
    blueprint = models.ForeignKey(
        "catalog.Blueprint", null=True, blank=True, on_delete=models.SET_NULL, related_name="guilds"
    )
    organization = models.ForeignKey(Organization, null=True, blank=True, on_delete=models.PROTECT,
                                     related_name="guilds")
    launched_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                                    related_name="launched_guilds")
    spec = models.JSONField(help_text="The guild spec as launched.")
    status = models.CharField(max_length=20, choices=GuildStatus.choices, default=GuildStatus.REQUESTED, db_index=True)
    status_detail = models.TextField(blank=True, default="", help_text="Why the guild is in ERROR or WARNING.")
    state = models.JSONField(default=dict, blank=True, help_text="Guild-level state shared by its agents.")
    # Idle for GUILDSITE_GUILD_IDLE_SECONDS: its agents are unloaded (state kept), its status left as it was;
    # a socket, a message or a relaunch resumes it (guilds.runtime.suspension).
    suspended = models.BooleanField(default=False, db_index=True,
                                    help_text="Unloaded while nobody uses it; resumed on the next socket or message.")
    suspended_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    started_at = models.DateTimeField(null=True, blank=True)
    stopped_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.name} ({self.id}, {self.status})"


class GuildStatusChange(models.Model):
    """One move of a guild's status (its health timeline). A guild keeps its newest STATUS_CHANGES_KEPT."""

    guild = models.ForeignKey(Guild, on_delete=models.CASCADE, related_name="status_changes")
    status = models.CharField(max_length=20, choices=GuildStatus.choices)
    detail = models.TextField(blank=True, default="")
    at = models.DateTimeField()

    class Meta:
        ordering = ["-at", "-id"]
        indexes = [models.Index(fields=["guild", "-at"], name="guild_status_change_newest")]

    def __str__(self) -> str:
        return f"{self.guild_id} {self.status} at {self.at.isoformat()}"


STATUS_CHANGES_KEPT = 200


class GuildMember(models.Model):
    """A user in a guild: its launcher, and every member of its organisation who joined over the user socket."""

    guild = models.ForeignKey(Guild, on_delete=models.CASCADE, related_name="members")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="guild_memberships")
    joined_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["guild", "joined_at"]
        constraints = [models.UniqueConstraint(fields=["guild", "user"], name="one_guild_member_row_per_user")]

    def __str__(self) -> str:
        return f"{self.user} in {self.guild_id}"


class AgentKind(models.TextChoices):
    BOT = "bot", "Agent"
    HUMAN = "human", "User proxy"
    SYSTEM = "system", "System"


class AgentStatus(models.TextChoices):
    STARTING = "starting", "Starting"
    RUNNING = "running", "Running"
    UNRESPONSIVE = "unresponsive", "Unresponsive"
    ERROR = "error", "Error"
    STOPPED = "stopped", "Stopped"


class GuildAgent(models.Model):
    guild = models.ForeignKey(Guild, on_delete=models.CASCADE, related_name="agents")
    agent_id = models.CharField(max_length=128)
    name = models.CharField(max_length=128)
    kind = models.CharField(max_length=10, choices=AgentKind.choices, default=AgentKind.BOT)
    class_name = models.CharField(max_length=512)
    spec = models.JSONField(help_text="The agent spec it runs with.")
    state = models.JSONField(default=dict, blank=True, help_text="The agent's own state, kept across relaunches.")
    runtime = models.JSONField(default=dict, blank=True,
                               help_text="The engine's bookkeeping of the agent (catch-up cursors, memory), "
                                         "apart from the state its handlers see.")
    status = models.CharField(max_length=20, choices=AgentStatus.choices, default=AgentStatus.STARTING)
    status_detail = models.TextField(blank=True, default="")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["guild", "created_at"]
        constraints = [models.UniqueConstraint(fields=["guild", "agent_id"], name="unique_agent_per_guild")]

    def __str__(self) -> str:
        return f"{self.name} ({self.agent_id})"


class GuildFile(models.Model):
    """A file a member uploaded to a guild (for FilesWithTextFormat messages)."""

    guild = models.ForeignKey(Guild, on_delete=models.CASCADE, related_name="files")
    name = models.CharField(max_length=255)
    content_type = models.CharField(max_length=255, blank=True, default="application/octet-stream")
    size = models.PositiveBigIntegerField()
    uploaded_by = models.CharField(max_length=128)
    metadata = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["created_at"]
        constraints = [models.UniqueConstraint(fields=["guild", "name"], name="unique_file_name_per_guild")]

    def __str__(self) -> str:
        return self.name


class DeadLetter(models.Model):
    """A message an agent could not be given after bounded retries (the guild's dead-letter queue).

    Failures inside a handler are the agent's own (it answers with an error message); these failed
    outside one: the message could not be decoded, the agent could not be loaded, the process
    handling it died. Redelivering puts the message back in the agent's inbox."""

    guild = models.ForeignKey(Guild, on_delete=models.CASCADE, related_name="dead_letters")
    agent_id = models.CharField(max_length=128)
    message_id = models.BigIntegerField()
    message = models.JSONField(help_text="The message as it waited (or {'undecodable': its raw text}).")
    reason = models.TextField()
    attempts = models.PositiveIntegerField()
    failed_at = models.DateTimeField()

    class Meta:
        ordering = ["-failed_at"]
        constraints = [models.UniqueConstraint(fields=["guild", "agent_id", "message_id"],
                                               name="one_dead_letter_per_agent_and_message")]

    def __str__(self) -> str:
        return f"{self.message_id} for {self.agent_id}: {self.reason[:60]}"


class Thread(models.Model):
    """A conversation between one requester (a user, or an agent) and one agent of a guild (seed 004's thread).

    Keyed by (guild, agent_id, requester, conversation_id); an empty conversation_id is the requester's
    default thread with that agent. `requester` is the bus id (a user's is their user id), kept even where no
    user row matches it, so the key never has a NULL in it.
    """

    id = models.CharField(primary_key=True, max_length=64, default=new_public_id, editable=False)
    guild = models.ForeignKey(Guild, on_delete=models.CASCADE, related_name="threads")
    agent_id = models.CharField(max_length=128)
    requester = models.CharField(max_length=150, help_text="The bus id of who talks to the agent (a user id).")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.CASCADE,
                             related_name="threads")
    organization = models.ForeignKey(Organization, null=True, blank=True, on_delete=models.CASCADE,
                                     related_name="threads")
    conversation_id = models.CharField(max_length=256, blank=True, default="",
                                       help_text="The frames' conversation_id; empty: the default thread.")
    title = models.CharField(max_length=200, blank=True, default="")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-updated_at"]
        constraints = [
            models.UniqueConstraint(fields=["guild", "agent_id", "requester", "conversation_id"],
                                    name="thread_one_per_conversation"),
        ]

    def __str__(self) -> str:
        return self.title or f"{self.agent_id} / {self.requester} / {self.conversation_id or 'default'}"


class MessageRole(models.TextChoices):
    SYSTEM = "system", "System"
    USER = "user", "User"
    ASSISTANT = "assistant", "Assistant"
    TOOL = "tool", "Tool"


class ThreadMessage(models.Model):
    thread = models.ForeignKey(Thread, on_delete=models.CASCADE, related_name="messages")
    role = models.CharField(max_length=16, choices=MessageRole.choices)
    content = models.TextField(blank=True, default="")
    tool_calls = models.JSONField(null=True, blank=True, help_text="An assistant's tool calls (OpenAI shape).")
    tool_call_id = models.CharField(max_length=128, blank=True, default="", help_text="What a tool message answers.")
    tool_result = models.JSONField(null=True, blank=True)
    input_tokens = models.IntegerField(null=True, blank=True)
    output_tokens = models.IntegerField(null=True, blank=True)
    # The bus message this came from or went out as (a message id fits a bigint).
    bus_message_id = models.BigIntegerField(null=True, blank=True, db_index=True)
    run = models.ForeignKey("Run", null=True, blank=True, on_delete=models.SET_NULL, related_name="messages")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["id"]

    def __str__(self) -> str:
        return f"{self.role}: {self.content[:40]}"


class RunTrigger(models.TextChoices):
    CHAT = "chat", "Chat"
    API = "api", "API"
    SCHEDULE = "schedule", "Schedule"
    WEBHOOK = "webhook", "Webhook"


class RunStatus(models.TextChoices):
    QUEUED = "queued", "Queued"
    RUNNING = "running", "Running"
    SUCCEEDED = "succeeded", "Succeeded"
    FAILED = "failed", "Failed"
    CANCELLED = "cancelled", "Cancelled"
    BUDGET_EXHAUSTED = "budget_exhausted", "Budget exhausted"


class Run(models.Model):
    """One handling of a message by an LLM agent: what it cost, how long it took, how it ended."""

    id = models.CharField(primary_key=True, max_length=64, default=new_public_id, editable=False)
    guild = models.ForeignKey(Guild, on_delete=models.CASCADE, related_name="runs")
    agent_id = models.CharField(max_length=128)
    thread = models.ForeignKey(Thread, null=True, blank=True, on_delete=models.SET_NULL, related_name="runs")
    trigger = models.CharField(max_length=16, choices=RunTrigger.choices, default=RunTrigger.CHAT)
    # Who asked: a user's username (their messages reach agents through their proxy), else the sending agent's id.
    requester = models.CharField(max_length=150, blank=True, default="")
    status = models.CharField(max_length=20, choices=RunStatus.choices, default=RunStatus.QUEUED, db_index=True)
    # The bus message that started it: a redelivered message finds its run instead of making another.
    message_id = models.BigIntegerField(null=True, blank=True)
    model = models.CharField(max_length=200, blank=True, default="")
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    duration_ms = models.IntegerField(null=True, blank=True)
    time_to_first_token_ms = models.IntegerField(null=True, blank=True)
    input_tokens = models.IntegerField(null=True, blank=True)
    output_tokens = models.IntegerField(null=True, blank=True)
    cached_tokens = models.IntegerField(null=True, blank=True)
    # Null when the price is not known (an unknown model): never a made-up 0.
    cost_usd = models.DecimalField(max_digits=14, decimal_places=8, null=True, blank=True)
    error = models.TextField(blank=True, default="")
    # Its tool calls: [{"id", "tool", "server", "ok", "duration_ms", "error"?}]; and what else went wrong on the
    # way without ending it (an MCP server that could not be reached).
    tool_calls = models.JSONField(default=list, blank=True)
    notes = models.JSONField(default=list, blank=True)

    class Meta:
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["guild", "agent_id", "-created_at"])]
        constraints = [
            models.UniqueConstraint(fields=["guild", "agent_id", "message_id"], name="run_one_per_message"),
        ]

    def __str__(self) -> str:
        return f"run {self.id} ({self.agent_id}, {self.status})"


class Budget(models.Model):
    """A monthly cap on what LLM runs may spend (USD, tokens), for an organisation or for one guild: exactly one of
    the two. A month is the calendar month in UTC (guilds.budgets)."""

    organization = models.OneToOneField(Organization, null=True, blank=True, on_delete=models.CASCADE,
                                        related_name="budget")
    guild = models.OneToOneField(Guild, null=True, blank=True, on_delete=models.CASCADE, related_name="budget")
    monthly_usd = models.DecimalField(max_digits=14, decimal_places=4, null=True, blank=True)
    monthly_tokens = models.BigIntegerField(null=True, blank=True)
    # The month ("2026-12") whose 80 % warning went out: one a month and budget.
    warned_month = models.CharField(max_length=7, blank=True, default="")
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.CheckConstraint(
                condition=(models.Q(organization__isnull=False, guild__isnull=True)
                           | models.Q(organization__isnull=True, guild__isnull=False)),
                name="budget_of_an_organization_or_a_guild"),
        ]

    def __str__(self) -> str:
        return f"budget of {self.scope} {self.organization_id or self.guild_id}"

    @property
    def scope(self) -> str:
        return "organization" if self.organization_id else "guild"


class MisfirePolicy(models.TextChoices):
    SKIP = "skip", "Skip missed firings"
    RUN_ONCE = "run_once", "Run once to catch up"


class Schedule(models.Model):
    """A message sent into a guild on a cron schedule (seed 004's scheduled agents; guilds.schedules fires them).

    `next_run_at` is the next firing, in UTC; a tick claims the rows that are due and moves it on before it sends,
    so two ticks never send one firing twice."""

    id = models.CharField(primary_key=True, max_length=64, default=new_public_id, editable=False)
    guild = models.ForeignKey(Guild, on_delete=models.CASCADE, related_name="schedules")
    organization = models.ForeignKey(Organization, null=True, blank=True, on_delete=models.CASCADE,
                                     related_name="schedules")
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                                   related_name="schedules")
    name = models.CharField(max_length=64, blank=True, default="", help_text="Its messages' sender name.")
    agent_id = models.CharField(max_length=128, blank=True, default="",
                                help_text="The agent it sends to; empty: the guild's default topic.")
    cron = models.CharField(max_length=120)
    timezone = models.CharField(max_length=64, default="UTC")
    format = models.CharField(max_length=200, default="text")
    payload = models.JSONField(default=dict, blank=True)
    misfire_policy = models.CharField(max_length=16, choices=MisfirePolicy.choices, default=MisfirePolicy.SKIP)
    enabled = models.BooleanField(default=True)
    disabled_reason = models.CharField(max_length=200, blank=True, default="")
    next_run_at = models.DateTimeField(null=True, blank=True)
    last_run_at = models.DateTimeField(null=True, blank=True)
    last_run_id = models.CharField(max_length=64, blank=True, default="")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["created_at", "id"]
        indexes = [models.Index(fields=["enabled", "next_run_at"], name="schedule_due")]

    def __str__(self) -> str:
        return f"{self.name or self.pk}: {self.cron} ({self.timezone})"

    @property
    def sender_id(self) -> str:
        return f"{SCHEDULE_SENDER_PREFIX}{self.pk}"


STOPPED_GUILD_REASON = "its guild is stopped"


class IdempotentRequest(models.Model):
    """A request made with an `Idempotency-Key` (guildsite.idempotency): the first answer, given again to the same
    request with the same key for 24 hours. `status_code` is empty while the first is being worked on."""

    scope = models.CharField(max_length=200, help_text="org:{id}, or user:{username} in development.")
    key = models.CharField(max_length=255)
    fingerprint = models.CharField(max_length=64, help_text="SHA-256 of the method, path and body.")
    status_code = models.IntegerField(null=True, blank=True)
    response = models.JSONField(null=True, blank=True)
    created_at = models.DateTimeField(db_index=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["scope", "key"], name="idempotency_key_once_per_scope")]

    def __str__(self) -> str:
        return f"{self.scope} {self.key}"




class TriggerFormat(models.TextChoices):
    GENERIC_JSON = "generic_json", "Any JSON body"


class Trigger(models.Model):
    """A signed webhook that sends a message to one agent of a guild (seed 004's triggers; guilds.triggers checks
    and accepts its events). Its secret is kept sealed (guildsite.sealing): shown once, never returned."""

    id = models.CharField(primary_key=True, max_length=64, default=new_public_id, editable=False)
    guild = models.ForeignKey(Guild, on_delete=models.CASCADE, related_name="triggers")
    organization = models.ForeignKey(Organization, null=True, blank=True, on_delete=models.CASCADE,
                                     related_name="triggers")
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                                   related_name="triggers")
    agent_id = models.CharField(max_length=128)
    format = models.CharField(max_length=32, choices=TriggerFormat.choices, default=TriggerFormat.GENERIC_JSON)
    prompt_template = models.TextField(blank=True, default="",
                                       help_text="The message's text, {payload} standing for the event's JSON.")
    use_site_secret = models.BooleanField(default=False, help_text="Verify with TRIGGER_SIGNING_SECRET instead.")
    sealed_secret = models.TextField()
    sealed_previous_secret = models.TextField(blank=True, default="")
    previous_secret_expires_at = models.DateTimeField(null=True, blank=True)
    enabled = models.BooleanField(default=True)
    last_event_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["created_at", "id"]

    def __str__(self) -> str:
        return f"trigger {self.pk} → {self.agent_id}"

    @property
    def sender_id(self) -> str:
        return f"{TRIGGER_SENDER_PREFIX}{self.pk}"


class TriggerEventSeen(models.Model):
    """An accepted event's (trigger, timestamp, body digest), refused as a replay while its timestamp is within the
    window: the embedded default's replay cache (production keeps it in Redis)."""

    trigger_id = models.CharField(max_length=64)
    timestamp = models.BigIntegerField()
    body_sha256 = models.CharField(max_length=64)
    created_at = models.DateTimeField(db_index=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["trigger_id", "timestamp", "body_sha256"],
                                               name="trigger_event_once")]

    def __str__(self) -> str:
        return f"event {self.timestamp} of trigger {self.trigger_id}"


class WebhookEvent(models.TextChoices):
    RUN_SUCCEEDED = "run.succeeded", "A run succeeded"
    RUN_FAILED = "run.failed", "A run failed"
    GUILD_STATUS_CHANGED = "guild.status_changed", "The guild's status changed"


class Webhook(models.Model):
    """An outbound webhook: a URL told of a guild's events, each delivery signed with Standard Webhooks headers
    (guilds.webhooks). Its secret is kept sealed: shown once, never returned."""

    id = models.CharField(primary_key=True, max_length=64, default=new_public_id, editable=False)
    guild = models.ForeignKey(Guild, on_delete=models.CASCADE, related_name="webhooks")
    organization = models.ForeignKey(Organization, null=True, blank=True, on_delete=models.CASCADE,
                                     related_name="webhooks")
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                                   related_name="webhooks")
    url = models.URLField(max_length=2000)
    events = models.JSONField(default=list)
    agent_id = models.CharField(max_length=128, blank=True, default="",
                                help_text="Only this agent's runs; empty: every agent's.")
    sealed_secret = models.TextField()
    enabled = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["created_at", "id"]
        indexes = [models.Index(fields=["guild", "enabled"], name="webhook_of_guild")]

    def __str__(self) -> str:
        return f"webhook {self.pk} → {self.url}"


class DeliveryStatus(models.TextChoices):
    PENDING = "pending", "Pending"
    SUCCEEDED = "succeeded", "Succeeded"
    DEAD = "dead", "Dead-lettered"


class WebhookDelivery(models.Model):
    """One event for one webhook: its body (made at the first attempt, then sent unchanged), its attempts and how
    the last one went. `next_attempt_at` is when it is tried next (pending), or null."""

    id = models.CharField(primary_key=True, max_length=64, default=new_public_id, editable=False)
    webhook = models.ForeignKey(Webhook, on_delete=models.CASCADE, related_name="deliveries")
    event_type = models.CharField(max_length=32, choices=WebhookEvent.choices)
    # The Standard Webhooks message id (`webhook-id`): the same for every attempt and a redelivery.
    event_id = models.CharField(max_length=64)
    subject_id = models.CharField(max_length=64, help_text="The run's or the guild's id.")
    # What the event saw (the guild's status then), over what the subject shows when the body is made.
    snapshot = models.JSONField(default=dict, blank=True)
    body = models.TextField(blank=True, default="", help_text="Empty until the first attempt makes it.")
    status = models.CharField(max_length=16, choices=DeliveryStatus.choices, default=DeliveryStatus.PENDING)
    attempts = models.IntegerField(default=0)
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    last_attempt_at = models.DateTimeField(null=True, blank=True)
    last_status_code = models.IntegerField(null=True, blank=True)
    last_error = models.TextField(blank=True, default="")
    redelivery_of = models.ForeignKey("self", null=True, blank=True, on_delete=models.SET_NULL,
                                      related_name="redeliveries")
    created_at = models.DateTimeField(auto_now_add=True)
    delivered_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name_plural = "webhook deliveries"
        indexes = [models.Index(fields=["status", "next_attempt_at"], name="webhook_delivery_due"),
                   models.Index(fields=["webhook", "-created_at"], name="webhook_delivery_log")]

    def __str__(self) -> str:
        return f"{self.event_type} to webhook {self.webhook_id} ({self.status})"


class ExternalStatus(models.TextChoices):
    ONLINE = "online", "Online"
    BUSY = "busy", "Busy"
    OFFLINE = "offline", "Offline"


class ExternalAgent(models.Model):
    """An agent that runs outside the server (seed 003) and connects to it (guilds.external). Its key is an API key
    of its organisation scoped to it (ApiKey.agent_registration_id); a guild seats it with an agent of class
    guilds.agents.external.ExternalAgent naming this id."""

    id = models.CharField(primary_key=True, max_length=64, default=new_public_id, editable=False)
    organization = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="external_agents")
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                                   related_name="external_agents")
    name = models.CharField(max_length=128)
    # What it said of itself when it last registered.
    version = models.CharField(max_length=64, blank=True, default="")
    capabilities = models.JSONField(default=list, blank=True)
    hostname = models.CharField(max_length=255, blank=True, default="")
    platform = models.CharField(max_length=255, blank=True, default="")
    status = models.CharField(max_length=16, choices=ExternalStatus.choices, default=ExternalStatus.OFFLINE)
    metrics = models.JSONField(default=dict, blank=True)
    # The socket connected now (a newer connection replaces it), and when it was last heard from.
    connection_id = models.CharField(max_length=64, blank=True, default="")
    last_seen_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["created_at", "id"]

    def __str__(self) -> str:
        return f"external agent {self.name} ({self.pk})"


class ExternalDelivery(models.Model):
    """A guild message waiting for an external agent: kept until it acknowledges it (at-least-once)."""

    id = models.BigAutoField(primary_key=True)
    agent = models.ForeignKey(ExternalAgent, on_delete=models.CASCADE, related_name="deliveries")
    guild = models.ForeignKey(Guild, on_delete=models.CASCADE, related_name="external_deliveries")
    seat_id = models.CharField(max_length=128, help_text="The id of the guild's agent that seats it.")
    message_id = models.BigIntegerField()
    message = models.TextField(help_text="The message's JSON.")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["id"]
        verbose_name_plural = "external deliveries"
        constraints = [models.UniqueConstraint(fields=["agent", "guild", "seat_id", "message_id"],
                                               name="external_delivery_once")]

    def __str__(self) -> str:
        return f"message {self.message_id} for {self.agent_id}"


class CommandState(models.TextChoices):
    QUEUED = "queued", "Queued"
    SENT = "sent", "Sent"
    ACKNOWLEDGED = "acknowledged", "Acknowledged"
    SUCCEEDED = "succeeded", "Succeeded"
    FAILED = "failed", "Failed"
    CANCELLED = "cancelled", "Cancelled"
    EXPIRED = "expired", "Expired"


class ExternalCommand(models.Model):
    """A command for an external agent and, once reported, its result (seed 003's CommandResult fields)."""

    id = models.CharField(primary_key=True, max_length=64, default=new_public_id, editable=False)
    agent = models.ForeignKey(ExternalAgent, on_delete=models.CASCADE, related_name="commands")
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                                   related_name="external_commands")
    type = models.CharField(max_length=64)
    content = models.TextField(blank=True, default="")
    parameters = models.JSONField(default=dict, blank=True)
    is_cancellation = models.BooleanField(default=False)
    cancels = models.ForeignKey("self", null=True, blank=True, on_delete=models.SET_NULL, related_name="cancellations")
    timeout_s = models.IntegerField(default=300)
    state = models.CharField(max_length=16, choices=CommandState.choices, default=CommandState.QUEUED, db_index=True)
    success = models.BooleanField(null=True, blank=True)
    output = models.TextField(blank=True, default="")
    error_message = models.TextField(blank=True, default="")
    exit_code = models.BigIntegerField(null=True, blank=True)  # Windows' NTSTATUS codes pass 2^31
    execution_time_ms = models.BigIntegerField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    expires_at = models.DateTimeField()
    sent_at = models.DateTimeField(null=True, blank=True)
    acknowledged_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["agent", "state"], name="external_command_open")]

    def __str__(self) -> str:
        return f"{self.type} for {self.agent_id} ({self.state})"


class ExternalSeat(models.Model):
    """A guild's agent that stands for an external agent (written with the guild: who to tell of its status)."""

    agent = models.ForeignKey(ExternalAgent, on_delete=models.CASCADE, related_name="seats")
    guild = models.ForeignKey(Guild, on_delete=models.CASCADE, related_name="external_seats")
    seat_id = models.CharField(max_length=128)
    seat_name = models.CharField(max_length=128, blank=True, default="")

    class Meta:
        constraints = [models.UniqueConstraint(fields=["guild", "seat_id"], name="external_seat_once")]

    def __str__(self) -> str:
        return f"{self.agent_id} as {self.seat_id} in {self.guild_id}"
