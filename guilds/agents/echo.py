"""EchoAgent: a `text` message comes back as `Echo: <text>`; any other message comes back unchanged."""

from __future__ import annotations

from guilds.runtime.agent import ANY_FORMAT, Agent, handles
from guilds.runtime.context import HandlerContext
from guilds.runtime.formats import TEXT, TEXT_FORMAT_QUALIFIED


class EchoAgent(Agent):
    """Echoes what it receives: text as "Echo: <text>", anything else unchanged."""

    @handles(TEXT, TEXT_FORMAT_QUALIFIED)
    async def echo_text(self, ctx: HandlerContext) -> None:
        payload = dict(ctx.message.payload)
        payload["text"] = f"Echo: {payload.get('text', '')}"
        await ctx.reply(payload, format=ctx.message.format)

    @handles(ANY_FORMAT)
    async def echo_anything(self, ctx: HandlerContext) -> None:
        if ctx.message.format in (TEXT, TEXT_FORMAT_QUALIFIED):
            return
        await ctx.reply(dict(ctx.message.payload), format=ctx.message.format)
