"""Celery tasks: the Celery engine's way into a worker (see guilds.engines.celery)."""

from __future__ import annotations

from celery import shared_task

from guilds.runtime import loop as runtime_loop


@shared_task(bind=True, acks_late=True, reject_on_worker_lost=True, max_retries=None, ignore_result=True)
def drain_agent(self, guild_id: str, agent_id: str) -> int:
    """Handle every message waiting for one agent (in order, under its lease)."""
    from redis.exceptions import ConnectionError as RedisConnectionError
    from redis.exceptions import TimeoutError as RedisTimeoutError

    from guilds.engines.celery import engine
    from messaging.errors import BackendUnavailable

    try:
        outcome = runtime_loop.run(engine().drain(guild_id, agent_id), timeout=None)
    except (BackendUnavailable, RedisConnectionError, RedisTimeoutError, ConnectionError) as exc:
        # Redis is away (a restart): the message is still in the inbox; try again shortly.
        raise self.retry(exc=exc, countdown=min(10, 0.5 * 2 ** min(self.request.retries, 4))) from None
    if outcome.retry_in is not None:
        raise self.retry(countdown=outcome.retry_in)
    if outcome.more:
        drain_agent.apply_async((guild_id, agent_id))
    return outcome.handled


@shared_task(ignore_result=True)
def health_ticks() -> int:
    """Every heartbeat interval (Celery beat): the managers' health rounds."""
    from guilds.engines.celery import engine

    return runtime_loop.run(engine().publish_ticks())
