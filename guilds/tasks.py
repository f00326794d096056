"""Celery tasks: the Celery engine's way into a worker (see guilds.engines.celery)."""

from __future__ import annotations

from celery import shared_task

from guilds.engines.celery import engine
from guilds.runtime import loop as runtime_loop


@shared_task(bind=True, acks_late=True, reject_on_worker_lost=True, max_retries=None, ignore_result=True)
def drain_agent(self, guild_id: str, agent_id: str) -> int:
    """Handle every message waiting for one agent (in order, under its lease)."""
    redelivered = bool((self.request.delivery_info or {}).get("redelivered"))
    outcome = runtime_loop.run(engine().drainer.drain_task_waiting_for_redis(guild_id, agent_id,
                                                                             redelivered=redelivered), timeout=None)
    if outcome.retry_in is not None:
        raise self.retry(countdown=outcome.retry_in)
    if outcome.more:
        drain_agent.apply_async((guild_id, agent_id))
    return outcome.handled


@shared_task(ignore_result=True)
def health_ticks() -> int:
    """Every heartbeat interval (Celery beat): the managers' health rounds."""
    return runtime_loop.run(engine().beat.publish_ticks())


@shared_task(ignore_result=True)
def suspend_idle_guilds(idle_seconds: float | None = None) -> int:
    """A few times per idle period (Celery beat): suspend the guilds nobody used for
    GUILDSITE_GUILD_IDLE_SECONDS (`idle_seconds` instead, when given)."""
    return len(runtime_loop.run(engine().suspend_idle(idle_seconds), timeout=600))  # many guilds may go at once


@shared_task(ignore_result=True)
def schedules_tick() -> int:
    """Every GUILDSITE_SCHEDULE_TICK_SECONDS (Celery beat): send the schedules' due firings, each once."""
    from guilds import schedules

    return len(schedules.tick())


@shared_task(ignore_result=True, acks_late=True, reject_on_worker_lost=True)
def webhook_deliver(delivery_id: str) -> None:
    """One webhook delivery's due attempt; a failed one's next attempt is this task again, after its back-off."""
    from guilds import webhooks

    delay = webhooks.attempt(delivery_id)
    if delay is not None:
        webhooks.deliver_soon([delivery_id], delay)  # a far-off retry is left to the sweep


@shared_task(ignore_result=True)
def webhooks_sweep() -> int:
    """Every GUILDSITE_WEBHOOK_SWEEP_SECONDS (Celery beat): deliveries whose next attempt is due and was too far off
    for a countdown, or whose task was lost (a worker killed mid-attempt: its lease runs out)."""
    from guilds import webhooks

    due = webhooks.due_ids(overdue_seconds=webhooks.SWEEP_OVERDUE_SECONDS)
    webhooks.deliver_soon(due)
    return len(due)
