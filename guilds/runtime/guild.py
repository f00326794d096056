"""What the guild manager may do to its guild, whatever engine runs it, and the per-process bus cache."""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

from messaging.bus import MessagingInterface
from messaging.config import MessagingConfig

if TYPE_CHECKING:
    from guilds.spec import AgentSpec, GuildSpec

_buses: dict[tuple[str, str], MessagingInterface] = {}


def guild_bus(guild_id: str, config: MessagingConfig | None) -> MessagingInterface:
    """The guild's bus in this process (one per guild; call on the runtime loop)."""
    key = (guild_id, config.model_dump_json() if config is not None else "")
    bus = _buses.get(key)
    if bus is None:
        bus = _buses[key] = MessagingInterface(guild_id, config)
    return bus


def guild_bus_forget(guild_id: str) -> None:
    for key in [k for k in _buses if k[0] == guild_id]:
        del _buses[key]


class GuildControl(Protocol):
    guild_id: str
    spec: GuildSpec
    bus: MessagingInterface

    async def start_agent(self, spec: AgentSpec, *, kind: str, catch_up_since_ms: int | None = None) -> None: ...

    async def stop_agent(self, agent_id: str) -> None: ...

    async def stop_all_agents(self) -> None: ...

    async def running_agent_ids(self) -> list[str]: ...

    def schedule_shutdown(self) -> None: ...


def messaging_config_of(spec: dict) -> MessagingConfig | None:
    """The messaging config a stored guild spec names (None: the site's default)."""
    config = (spec.get("properties") or {}).get("messaging")
    return MessagingConfig.model_validate(config) if config else None


def bus_of(guild_id: str, spec: dict) -> MessagingInterface:
    return guild_bus(guild_id, messaging_config_of(spec))
