"""Execution engine names a spec may use, and what each means on this site.

The original system's engines all map to the site's engine (in-process on the
embedded default, Celery workers when GUILDSITE_EXECUTION_ENGINE=celery), so its
blueprints run unchanged wherever the site runs agents. Naming one of ours chooses it.
"""

from __future__ import annotations

from django.conf import settings

INPROCESS = "inprocess"
CELERY = "celery"

OURS: dict[str, str] = {
    "inprocess": INPROCESS,
    "guilds.engines.inprocess.InProcessEngine": INPROCESS,
    "celery": CELERY,
    "guilds.engines.celery.CeleryEngine": CELERY,
}

SITE_DEFAULT_ALIASES = frozenset(
    {
        "rustic_ai.core.guild.execution.sync.sync_exec_engine.SyncExecutionEngine",
        "rustic_ai.core.guild.execution.sync.SyncExecutionEngine",
        "rustic_ai.core.guild.execution.multithreaded.MultiThreadedEngine",
        "rustic_ai.core.guild.execution.multithreaded.multithreaded_exec_engine.MultiThreadedEngine",
        "rustic_ai.core.guild.execution.multiprocess.MultiProcessExecutionEngine",
        "rustic_ai.core.guild.execution.multiprocess.multiprocess_exec_engine.MultiProcessExecutionEngine",
        "rustic_ai.ray.RayExecutionEngine",
        "rustic_ai.ray.execution_engine.RayExecutionEngine",
    }
)


class UnknownEngine(ValueError):
    pass


def resolve_engine_name(name: str | None) -> str:
    """The engine ("inprocess" or "celery") a spec's `execution_engine` selects."""
    if not name or name in SITE_DEFAULT_ALIASES:
        return settings.GUILDSITE_EXECUTION_ENGINE
    if name in OURS:
        return OURS[name]
    accepted = sorted(OURS) + sorted(SITE_DEFAULT_ALIASES)
    raise UnknownEngine(f"unknown execution engine '{name}'; accepted: {', '.join(accepted)}")
