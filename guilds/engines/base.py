"""The execution-engine interface: where a guild's agents run. Agents, routing and the
manager are the same on every engine; an engine decides only where handlers execute."""

from __future__ import annotations

from abc import ABC, abstractmethod


class ExecutionEngine(ABC):
    name: str

    @abstractmethod
    def launch_guild(self, guild_id: str) -> None:
        """Start the guild's manager (which starts the rest). Returns at once; progress shows in the status."""

    @abstractmethod
    def is_guild_running(self, guild_id: str) -> bool:
        """Whether this engine has the guild's manager running."""

    @abstractmethod
    async def launch(self, guild_id: str) -> bool:
        """Launch on the runtime loop; False if it was already running, stopped or unknown."""

    @abstractmethod
    async def forget(self, guild_id: str) -> None:
        """Drop whatever of the guild runs on this engine (its status is left as it is)."""

    @abstractmethod
    async def shutdown(self) -> None:
        """Stop every guild this engine runs in this process (the process is going away)."""
