"""What the guild manager may do to its guild, whatever engine runs it."""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

from messaging.bus import MessagingInterface

if TYPE_CHECKING:
    from guilds.spec import AgentSpec, GuildSpec


class GuildControl(Protocol):
    guild_id: str
    spec: GuildSpec
    bus: MessagingInterface

    async def start_agent(self, spec: AgentSpec, *, kind: str, catch_up_since_ms: int | None = None) -> None: ...

    async def stop_agent(self, agent_id: str) -> None: ...

    async def stop_all_agents(self) -> None: ...

    async def running_agent_ids(self) -> list[str]: ...

    def schedule_shutdown(self) -> None: ...
