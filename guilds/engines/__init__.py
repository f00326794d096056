"""Which engine runs a guild: the spec's `execution_engine` (see names.py) or the site's default."""

from __future__ import annotations

from functools import cache

from guilds.engines.base import ExecutionEngine
from guilds.engines.names import CELERY, INPROCESS, resolve_engine_name


@cache
def engine_named(name: str) -> ExecutionEngine:
    if name == INPROCESS:
        from guilds.engines.inprocess import InProcessEngine

        return InProcessEngine()
    if name == CELERY:
        from guilds.engines.celery import CeleryEngine

        return CeleryEngine()
    raise LookupError(f"no execution engine '{name}'")


def engine_for_spec(spec: dict) -> ExecutionEngine:
    properties = spec.get("properties") or {}
    return engine_named(resolve_engine_name(properties.get("execution_engine")))


def engine_for_guild(guild_id: str) -> ExecutionEngine:
    from guilds.models import Guild

    spec = Guild.objects.filter(pk=guild_id).values_list("spec", flat=True).first() or {}
    return engine_for_spec(spec)
