"""ExternalAgent: a guild's seat for an agent that runs outside the server (guilds.external).

Messages routed to the seat (topics, routes, replies: the same rules as any agent) are kept for the external
agent until it acknowledges them; what the agent publishes enters the guild as the seat. Its heartbeat says how
the external agent is: offline, the seat answers `warning` with the reason, and the guild is WARNING.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from guilds.runtime.agent import ANY_FORMAT, Agent, handles
from guilds.runtime.context import HandlerContext
from guilds.runtime.store import on_db_threads


@on_db_threads
def _registration(registration_id: str, guild_id: str):
    from guilds.models import ExternalAgent, Guild

    organization_id = Guild.objects.filter(pk=guild_id).values_list("organization_id", flat=True).first()
    return ExternalAgent.objects.filter(pk=registration_id, organization_id=organization_id).first()


class ExternalAgent(Agent):
    """An agent that runs elsewhere and connects over /ws/agents/ (register it at /api/external-agents)."""

    kind = "bot"

    class Properties(BaseModel):
        model_config = ConfigDict(extra="forbid")
        registration_id: str = Field(min_length=1, max_length=64)

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.waiting_at_most: int | None = None  # how many of its messages wait at most (None: count them)

    def import_memory(self, memory: dict | None) -> None:
        # Loaded for a drain (the Celery engine), perhaps in another process than the last one: count afresh.
        self.waiting_at_most = None

    @property
    def registration_id(self) -> str:
        return self.properties.registration_id

    async def on_start(self, ctx: HandlerContext) -> None:
        if await _registration(self.registration_id, self.guild_id) is None:
            raise LookupError(f"external agent '{self.registration_id}' is not registered in this guild's organisation")

    async def health(self) -> tuple[str, str]:
        from guilds.external import presence
        from guilds.models import ExternalStatus

        registration = await _registration(self.registration_id, self.guild_id)
        if registration is None:
            return "warning", f"external agent '{self.registration_id}' was deleted"
        if presence.effective_status(registration) == ExternalStatus.OFFLINE:
            return "warning", presence.offline_reason(registration)
        return "ok", ""

    @handles(ANY_FORMAT)
    async def keep_for_external_agent(self, ctx: HandlerContext) -> None:
        from guilds.external.inbox import message_enqueue

        self.waiting_at_most = await message_enqueue(self.host, self.registration_id, ctx.message,
                                                     self.waiting_at_most)
