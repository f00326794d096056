"""The execution-engine interface: where a guild's agents run. Agents, routing and the
manager are the same on every engine; an engine decides only where handlers execute, and builds the
guild's bus with the delivery that reaches them there."""

from __future__ import annotations

from abc import ABC, abstractmethod

from guilds.runtime.activity import activity
from messaging.bus import MessagingInterface
from messaging.config import MessagingConfig
from messaging.message import Message


class ExecutionEngine(ABC):
    name: str

    @abstractmethod
    def bus(self, guild_id: str, config: MessagingConfig | None) -> MessagingInterface:
        """The guild's bus in this process (one per guild and config; call on the runtime loop)."""

    @abstractmethod
    def launch_guild(self, guild_id: str) -> None:
        """Start the guild's manager (which starts the rest). Returns at once; progress shows in the status."""

    @abstractmethod
    def is_guild_running(self, guild_id: str) -> bool:
        """Whether this engine has the guild's manager running."""

    @abstractmethod
    async def launch(self, guild_id: str, *, resumed: bool = False) -> bool:
        """Launch on the runtime loop; False if it was already running, stopped or unknown. `resumed`: the
        guild was suspended (guilds.runtime.suspension) and keeps its status."""

    @abstractmethod
    async def wait_stopped(self, guild_id: str, timeout: float) -> bool:
        """Once the manager announced STOPPED: wait until nothing of the guild runs (False: not in time)."""

    @abstractmethod
    async def redeliver(self, guild_id: str, agent_id: str, message: Message) -> bool:
        """Give a dead-lettered message to its agent again; False if that agent does not run."""

    @abstractmethod
    async def running_agent_ids(self, guild_id: str) -> list[str]:
        """The guild's agents this engine runs now (in any process)."""

    @abstractmethod
    async def queue_depths(self, agents: list[tuple[str, str]],
                           configs: dict[str, MessagingConfig | None]) -> dict[tuple[str, str], int]:
        """How many messages wait for each (guild_id, agent_id) now: one answer for many agents (a dashboard
        asks for a page of them at once); an agent this engine does not run answers 0. `configs`: each guild's
        messaging config, as its spec names it (so nothing is loaded per guild). Waiting only: the message an
        agent is handling is not counted. An agent left out of the answer could not be asked (its Redis did
        not answer, say): the engine logs why and raises nothing."""

    @abstractmethod
    async def suspend_idle(self, idle: float | None = None) -> list[str]:
        """Suspend the guilds this engine runs that nobody used for `idle` seconds (default: the setting)."""

    async def forward_for_user(self, guild_id: str, user_id: str, message: Message) -> bool:
        """Carry a message a user sent on their socket into the guild as their proxy would, if this process can
        do it at once: True if it did. False (every engine but where it says otherwise): the socket publishes it
        to the user's inbox, from where the proxy carries it."""
        return False

    @abstractmethod
    async def forget(self, guild_id: str) -> None:
        """Drop whatever of the guild runs on this engine (its status is left as it is)."""

    @abstractmethod
    async def shutdown(self) -> None:
        """Stop every guild this engine runs in this process (the process is going away)."""


def note_activity(guild_id: str, message: Message) -> None:
    """Every engine's buses report their publishes here (guilds.runtime.activity: memory only)."""
    activity().note(guild_id, message)
