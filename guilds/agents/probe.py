"""ProbeAgent: a diagnostic agent for trying a guild's machinery (and for its tests).

- `probe.sleep` `{"seconds": s}`: busy for s seconds (its heartbeats wait too, so the guild shows WARNING);
- `probe.raise` `{"message": m}`: the handler raises, so the sender gets an ErrorMessage;
- `probe.state` `{"patch": {...}}`: merges the patch into the agent's state and replies with the state;
- `probe.guild_state` `{"patch": {...}}`: the same for the guild's shared state;
- `probe.blocking` `{"seconds": s}`: a plain (sync) handler that blocks a worker thread, then replies;
- `probe.burst` `{"count": n, "topic": t}`: sends `probe.numbered` `{"n": 1..n}` to topic t, one by one
  (n at most 1,000);
- `probe.numbered` `{"n": i}`: tells topic `probe_seen` it handled number i (`probe.seen`), to check order;
- `probe.hold` `{"seconds": s, "until": key}`: busy until the guild's state has `key` set (or s seconds
  passed), then replies `probe.released`: a fault that lasts exactly as long as a test wants;
- `text`: counts the text messages it has had (kept in its state, so across restarts) and
  replies `count: N` — a chat-visible check that agent state survives a relaunch; a text
  `slow: s` tells topic `probe_seen` it started (`probe.started`), then waits s seconds first.

With the property `fail_on_start: true` it refuses to start. It is a diagnostic agent: specs may name it
only where GUILDSITE_DIAGNOSTIC_AGENTS=1 (tests, benchmarks), and no wait it is asked for lasts more
than PROBE_MAX_SECONDS.
"""

from __future__ import annotations

import asyncio
import time

from pydantic import BaseModel, ConfigDict

from guilds.runtime.agent import Agent, handles
from guilds.runtime.context import HandlerContext, SyncHandlerContext

BURST_MAX = 1_000  # a diagnostic, not a way to flood the guild
PROBE_MAX_SECONDS = 30.0  # nor a way to hold a worker for ever


def _seconds(value: object, default: float) -> float:
    try:
        seconds = float(value if value is not None else default)
    except (TypeError, ValueError):
        return default
    return min(max(0.0, seconds), PROBE_MAX_SECONDS)


class ProbeAgent(Agent):
    """Diagnostics: sleeps, raises, keeps state on request."""

    diagnostic = True

    class Properties(BaseModel):
        model_config = ConfigDict(extra="forbid")
        # Refuse to start, to see what a guild whose agent cannot start looks like.
        fail_on_start: bool = False

    async def on_start(self, ctx: HandlerContext) -> None:
        if self.properties.fail_on_start:
            raise RuntimeError("ProbeAgent was told to fail on start (fail_on_start)")

    @handles("text")
    async def count(self, ctx: HandlerContext) -> None:
        text = str(ctx.payload.get("text", ""))
        if text.startswith("slow:"):  # "slow: 2" takes 2 s before it counts: time to break something meanwhile
            await ctx.send({"text": text}, format="probe.started", topics="probe_seen", routed=False)
            await asyncio.sleep(_seconds(text.removeprefix("slow:") or None, 1))
        state = await ctx.update_agent_state({"texts": int(ctx.agent_state.get("texts", 0)) + 1})
        await ctx.reply({"text": f"count: {state['texts']}"}, format="text")

    @handles("probe.sleep")
    async def sleep(self, ctx: HandlerContext) -> None:
        await asyncio.sleep(_seconds(ctx.payload.get("seconds"), 1))
        await ctx.reply({"slept": ctx.payload.get("seconds", 1)}, format="probe.slept")

    @handles("probe.hold")
    async def hold(self, ctx: HandlerContext) -> None:
        key = str(ctx.payload.get("until", "release"))
        deadline = time.monotonic() + _seconds(ctx.payload.get("seconds"), 10)
        while time.monotonic() < deadline and not (await ctx.guild_state()).get(key):
            await asyncio.sleep(0.05)  # polls the guild's state: the test says when the fault ends
        await ctx.reply({"released": key}, format="probe.released")

    @handles("probe.raise")
    async def fail(self, ctx: HandlerContext) -> None:
        raise RuntimeError(ctx.payload.get("message", "probe failure"))

    @handles("probe.state")
    async def agent_state(self, ctx: HandlerContext) -> None:
        state = await ctx.update_agent_state(ctx.payload.get("patch") or {})
        await ctx.reply({"state": state}, format="probe.state")

    @handles("probe.guild_state")
    async def guild_state(self, ctx: HandlerContext) -> None:
        state = await ctx.update_guild_state(ctx.payload.get("patch") or {})
        await ctx.reply({"state": state}, format="probe.guild_state")

    @handles("probe.blocking")
    def blocking(self, ctx: SyncHandlerContext) -> None:
        time.sleep(_seconds(ctx.payload.get("seconds"), 0.1))
        ctx.reply({"blocked": ctx.payload.get("seconds", 0.1)}, format="probe.blocked")

    @handles("probe.burst")
    async def burst(self, ctx: HandlerContext) -> None:
        for number in range(1, min(int(ctx.payload.get("count", 10)), BURST_MAX) + 1):
            await ctx.send({"n": number}, format="probe.numbered", topics=str(ctx.payload["topic"]))

    @handles("probe.numbered")
    async def numbered(self, ctx: HandlerContext) -> None:
        await ctx.send({"n": ctx.payload.get("n")}, format="probe.seen", topics="probe_seen")
