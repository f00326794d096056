"""Runs: one agent's handling of one message, recorded with how it ended (seed 004's run history).

LLM agents record every handling, with tokens and cost (guilds.agents.llm). Any agent's handling of a message
that a trigger sent (`Message.trigger`: the REST message endpoint today, schedules and webhooks next) is
recorded by its host. A run is keyed by (guild, agent, message), so a redelivered message finds its run again.
Status changes go out as `runUpdate` messages on the guild's system topic, as live `run_update` events, and (ended)
to the guild's outbound webhooks.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

from django.db import IntegrityError
from django.utils import timezone

from guilds.models import Run, RunStatus, RunTrigger
from guilds.runtime import live, outbound, store
from guilds.runtime.context import HandlerContext
from guilds.runtime.store import on_db_threads
from guilds.spec import USER_PROXY_ID_PREFIX
from messaging import topics as topic_names
from messaging.message import Message

RUN_UPDATE = "runUpdate"
INTERRUPTED = "interrupted: the agent stopped while the run went on (its message is handled again when redelivered)"
RUNS_TOPIC = topic_names.SYSTEM_TOPIC  # seed 004's runUpdate, where the guild's system messages go


def requester_of(message: Message) -> str:
    """Who asked: the user behind a user proxy, else the sender."""
    return message.sender.id.removeprefix(USER_PROXY_ID_PREFIX) if message.sender.id else ""


@on_db_threads
def run_queue(*, guild_id: str, agent_id: str, message_id: int, trigger: str, requester: str) -> Run:
    """A run waiting for its agent: made as the message is sent, so its sender has its id at once. The message is
    new, so this is one INSERT; the same message again (a retried send) finds its run."""
    try:
        return Run.objects.create(guild_id=guild_id, agent_id=agent_id, message_id=message_id, trigger=trigger,
                                  status=RunStatus.QUEUED, requester=requester)
    except IntegrityError:
        return Run.objects.get(guild_id=guild_id, agent_id=agent_id, message_id=message_id)


@on_db_threads
def run_start(*, guild_id: str, agent_id: str, thread_id: str | None, message_id: int | None, requester: str,
              model: str = "", trigger: str | None = None) -> Run:
    """The run of this message, made running: the queued row when there is one (its trigger kept), the same
    row again when the message is handled again."""
    now = timezone.now()
    started = {"thread_id": thread_id, "status": RunStatus.RUNNING, "model": model, "started_at": now,
               "finished_at": None, "error": ""}
    run, _ = Run.objects.update_or_create(
        guild_id=guild_id, agent_id=agent_id, message_id=message_id, defaults=started,
        create_defaults={**started, "trigger": trigger or RunTrigger.CHAT, "requester": requester},
    )
    return run


@on_db_threads
def run_finish(run_id: str, *, status: str, started_at: datetime | None, error: str = "",
               time_to_first_token_ms: int | None = None, input_tokens: int | None = None,
               output_tokens: int | None = None, cached_tokens: int | None = None, cost_usd: Decimal | None = None,
               model: str | None = None, tool_calls: list[dict[str, Any]] | None = None,
               notes: list[str] | None = None) -> None:
    now = timezone.now()
    fields: dict[str, Any] = {
        "status": status, "finished_at": now, "error": error, "time_to_first_token_ms": time_to_first_token_ms,
        "input_tokens": input_tokens, "output_tokens": output_tokens, "cached_tokens": cached_tokens,
        "cost_usd": cost_usd,
        "duration_ms": int((now - started_at).total_seconds() * 1000) if started_at is not None else None,
    }
    if model:
        fields["model"] = model
    if tool_calls is not None:
        fields["tool_calls"] = tool_calls
    if notes is not None:
        fields["notes"] = notes
    Run.objects.filter(pk=run_id).update(**fields)


@on_db_threads
def run_discard_queued(run_id: str) -> None:
    """A queued run whose message was never sent (the bus refused it)."""
    Run.objects.filter(pk=run_id, status=RunStatus.QUEUED).delete()


@on_db_threads
def run_abandon_queued(*, guild_id: str, agent_id: str, message_id: int, error: str) -> None:
    """A queued run whose agent handled its message without starting it (no handler for its format, refused
    before the run began): failed, saying why, rather than queued for ever."""
    Run.objects.filter(guild_id=guild_id, agent_id=agent_id, message_id=message_id, status=RunStatus.QUEUED).update(
        status=RunStatus.FAILED, error=error, finished_at=timezone.now())


async def publish_update(ctx: HandlerContext, run: Run, status: str, error: str = "") -> None:
    payload = {"run_id": run.pk, "status": status, "agent_id": run.agent_id, "thread_id": run.thread_id,
               "trigger": run.trigger, "at": timezone.now().isoformat()}
    if error:
        payload["error"] = error
    await ctx.send(payload, format=RUN_UPDATE, topics=RUNS_TOPIC, routed=False)
    sender = ctx.message.sender.id or ""
    try:
        organization_id = await store.guild_organization_id(run.guild_id)
    except Exception:  # the update is out on the bus; without its organisation the live event skips the user's topic
        organization_id = None
    await live.run_update(run_id=run.pk, guild_id=run.guild_id, organization_id=organization_id, agent_id=run.agent_id,
                          thread_id=run.thread_id, status=status, trigger=run.trigger, at=payload["at"], error=error,
                          requester_user=sender.removeprefix(USER_PROXY_ID_PREFIX) if live.is_user_proxy(sender) else None)
    await outbound.run_finished(guild_id=run.guild_id, run_id=run.pk, agent_id=run.agent_id, status=status)
