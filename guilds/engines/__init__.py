"""Which engine runs a guild: the spec's `execution_engine` (see names.py) or the site's default. The
engine also builds the guild's bus in this process, with the delivery its agents need."""

from __future__ import annotations

from functools import cache

from guilds.engines.base import ExecutionEngine
from guilds.engines.names import CELERY, INPROCESS, resolve_engine_name
from messaging.bus import MessagingInterface
from messaging.config import MessagingConfig


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


def messaging_config_of(spec: dict) -> MessagingConfig | None:
    """The messaging config a stored guild spec names (None: the site's default)."""
    config = (spec.get("properties") or {}).get("messaging")
    return MessagingConfig.model_validate(config) if config else None


def bus_of(guild_id: str, spec: dict) -> MessagingInterface:
    """The guild's bus in this process (call on the runtime loop): its engine's, so what is published here
    reaches the guild's agents however they run."""
    return engine_for_spec(spec).bus(guild_id, messaging_config_of(spec))
