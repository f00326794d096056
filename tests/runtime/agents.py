"""Agent classes the runtime tests run (their package is added to GUILDSITE_AGENT_PACKAGES for them)."""

from __future__ import annotations

from guilds.runtime.agent import ANY_FORMAT, Agent, handles
from guilds.runtime.context import HandlerContext


class TwoHandlers(Agent):
    """Answers a text message from two handlers."""

    @handles("text")
    async def first(self, ctx: HandlerContext) -> None:
        await ctx.reply({"text": "from first"})

    @handles(ANY_FORMAT)
    async def second(self, ctx: HandlerContext) -> None:
        await ctx.reply({"text": "from second"})


class FailsOnText(Agent):
    """Raises on every text message: each of its runs fails."""

    @handles("text")
    async def refuse(self, ctx: HandlerContext) -> None:
        raise RuntimeError(f"refused: {ctx.payload.get('text')}")
