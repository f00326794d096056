"""How many messages wait for agents (a dashboard's "queue depth"), from sync code: views, the admin.

Each guild's engine answers for its agents (guilds.engines.base.ExecutionEngine.queue_depths), on the
runtime loop: where the in-process engine's agents run, and where the Celery engine's buses reach Redis.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable

from guilds.engines import engine_named, messaging_config_of
from guilds.engines.base import ExecutionEngine
from guilds.engines.names import UnknownEngine, resolve_engine_name
from guilds.models import Guild
from guilds.runtime import loop as runtime_loop
from messaging.config import MessagingConfig

logger = logging.getLogger(__name__)

Agent = tuple[str, str]  # (guild id, agent id)
# A page renders without the counts past this (an engine bounds its own waits well below: Redis's 3 s).
ANSWER_TIMEOUT = 10.0


def queue_depths(agents: Iterable[Agent]) -> dict[Agent, int]:
    """Messages waiting for each (guild_id, agent_id) now, not counting one being handled; 0 for an agent
    not running (or of no guild). An agent missing from the answer could not be asked (its Redis did not
    answer in time, say: logged): show it as unknown. One database query, one call per engine in use."""
    agents = list(dict.fromkeys(agents))
    if not agents:
        return {}
    engines: dict[str, list[Agent]] = {}
    depths: dict[Agent, int] = {}
    names, configs = _engines_and_configs({guild_id for guild_id, _ in agents})
    for agent in agents:
        if agent[0] not in names:
            depths[agent] = 0  # no such guild: nothing of it runs
        elif names[agent[0]] is not None:
            engines.setdefault(names[agent[0]], []).append(agent)
    if engines:
        try:
            depths.update(runtime_loop.run(_ask(engines, configs), timeout=ANSWER_TIMEOUT))
        except TimeoutError:
            logger.warning("queue depths unknown: the runtime loop did not answer in %ss", ANSWER_TIMEOUT,
                           extra={"guild_ids": sorted({guild_id for guild_id, _ in agents})})
    return depths


def _engines_and_configs(guild_ids: set[str]) -> tuple[dict[str, str | None], dict[str, MessagingConfig | None]]:
    """Each existing guild's engine name (None: its spec names an engine this site does not know) and messaging
    config, in one query."""
    names: dict[str, str | None] = {}
    configs: dict[str, MessagingConfig | None] = {}
    rows = Guild.objects.filter(pk__in=guild_ids).values_list("pk", "spec__properties__execution_engine",
                                                              "spec__properties__messaging")
    for guild_id, named, messaging in rows:
        try:
            names[guild_id] = resolve_engine_name(named if isinstance(named, str) else None)
            configs[guild_id] = messaging_config_of({"properties": {"messaging": messaging}})
        except (UnknownEngine, ValueError) as exc:  # a config that no longer validates: pydantic's ValueError
            logger.warning("queue depths of guild %s unknown: %s", guild_id, exc, extra={"guild_id": guild_id})
            names[guild_id] = None
    return names, configs


async def _ask(engines: dict[str, list[Agent]], configs: dict[str, MessagingConfig | None]) -> dict[Agent, int]:
    asked: list[tuple[ExecutionEngine, list[Agent]]] = [(engine_named(name), agents) for name, agents in engines.items()]
    depths: dict[Agent, int] = {}
    for answer in await asyncio.gather(*(engine.queue_depths(agents, configs) for engine, agents in asked)):
        depths.update(answer)
    return depths
