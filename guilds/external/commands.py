"""Commands for external agents and their results (seed 003's CommandService, over our transports).

queued → sent → acknowledged → succeeded / failed, or cancelled (on request) / expired (its timeout passed
before a result came). A command waits for an offline agent until it expires; one sent to a connection that
dropped is sent again to the next (the SDK runs each once and reports its result again). A result counts
once: only a command still open takes one.
"""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction
from django.utils import timezone

from guilds.models import CommandState, ExternalAgent, ExternalCommand

logger = logging.getLogger(__name__)

OPEN_STATES = (CommandState.QUEUED, CommandState.SENT, CommandState.ACKNOWLEDGED)
FINAL_STATES = (CommandState.SUCCEEDED, CommandState.FAILED, CommandState.CANCELLED, CommandState.EXPIRED)
DEFAULT_TIMEOUT_S = 300
RESULT_GRACE_SECONDS = 5
OUTPUT_MAX_CHARS = 1_000_000
ERROR_MAX_CHARS = 10_000


class CommandClosed(Exception):
    """The command to cancel has ended already."""


def commands_expire(agent_id: str | None = None) -> int:
    """Open commands past their timeout, and RESULT_GRACE_SECONDS more, become `expired` (looked at whenever
    commands are read or sent). The grace lets the agent's own report of its timeout arrive and count."""
    deadline = timezone.now() - timedelta(seconds=RESULT_GRACE_SECONDS)
    open_commands = ExternalCommand.objects.filter(state__in=OPEN_STATES, expires_at__lte=deadline)
    if agent_id is not None:
        open_commands = open_commands.filter(agent_id=agent_id)
    return open_commands.update(state=CommandState.EXPIRED, finished_at=timezone.now(),
                                error_message="expired: no result within its timeout")


def command_create(*, agent: ExternalAgent, created_by: AbstractBaseUser | None, type: str, content: str,
                   parameters: dict[str, Any], timeout_s: int) -> ExternalCommand:
    command = ExternalCommand.objects.create(
        agent=agent, created_by=created_by, type=type, content=content, parameters=parameters, timeout_s=timeout_s,
        expires_at=timezone.now() + timedelta(seconds=timeout_s))
    logger.info("external command queued", extra={"external_agent_id": agent.pk, "command_id": command.pk})
    return command


def command_cancel(*, target: ExternalCommand, created_by: AbstractBaseUser | None) -> ExternalCommand:
    """The cancellation command for `target`. One never sent is cancelled here and its cancellation done at once;
    one the agent may be running is cancelled, and the agent told to stop it. CommandClosed if it has ended."""
    now = timezone.now()
    with transaction.atomic():
        target = ExternalCommand.objects.select_for_update().get(pk=target.pk)
        commands_expire(target.agent_id)
        target.refresh_from_db()
        if target.state not in OPEN_STATES:
            raise CommandClosed(f"command {target.pk} has ended ({target.state}): there is nothing to cancel")
        was_sent = target.state != CommandState.QUEUED
        ExternalCommand.objects.filter(pk=target.pk).update(state=CommandState.CANCELLED, finished_at=now,
                                                             error_message="cancelled on request")
        cancellation = ExternalCommand.objects.create(
            agent_id=target.agent_id, created_by=created_by, type="cancel", content=target.pk,
            parameters={"command_id": target.pk}, is_cancellation=True, cancels=target, timeout_s=target.timeout_s,
            expires_at=now + timedelta(seconds=min(target.timeout_s, DEFAULT_TIMEOUT_S)))
        if not was_sent:  # the agent never had it: nothing to tell it
            ExternalCommand.objects.filter(pk=cancellation.pk).update(
                state=CommandState.SUCCEEDED, success=True, output="cancelled before it was sent", finished_at=now)
            cancellation.refresh_from_db()
    return cancellation


def commands_claim(agent_id: str, *, resend: bool) -> list[ExternalCommand]:
    """Commands to send to a connected agent now, oldest first, marked sent: the queued ones (each claimed by one
    connection); with `resend` (a new connection), also those sent before and not finished."""
    commands_expire(agent_id)
    states = OPEN_STATES if resend else (CommandState.QUEUED,)
    candidates = list(ExternalCommand.objects.filter(agent_id=agent_id, state__in=states).order_by("created_at", "id")[:100])
    claimed = []
    now = timezone.now()
    for command in candidates:
        if command.state != CommandState.QUEUED or ExternalCommand.objects.filter(
                pk=command.pk, state=CommandState.QUEUED).update(state=CommandState.SENT, sent_at=now):
            claimed.append(command)
    return claimed


def command_acknowledged(agent_id: str, command_id: str) -> bool:
    return bool(ExternalCommand.objects.filter(
        pk=command_id, agent_id=agent_id, state__in=(CommandState.QUEUED, CommandState.SENT)).update(
        state=CommandState.ACKNOWLEDGED, acknowledged_at=timezone.now()))


def command_result(agent_id: str, command_id: str, *, success: bool, output: str, error_message: str,
                   exit_code: int | None, execution_time_ms: int | None) -> str:
    """Store the result if the command is still open; the command's state after (a second report changes
    nothing). KeyError if the agent has no such command."""
    commands_expire(agent_id)
    updated = ExternalCommand.objects.filter(pk=command_id, agent_id=agent_id, state__in=OPEN_STATES).update(
        state=CommandState.SUCCEEDED if success else CommandState.FAILED, success=success,
        output=output[:OUTPUT_MAX_CHARS], error_message=error_message[:ERROR_MAX_CHARS], exit_code=exit_code,
        execution_time_ms=execution_time_ms, finished_at=timezone.now())
    state = ExternalCommand.objects.filter(pk=command_id, agent_id=agent_id).values_list("state", flat=True).first()
    if state is None:
        raise KeyError(command_id)
    if updated:
        logger.info("external command finished", extra={"external_agent_id": agent_id, "command_id": command_id})
    return state


def max_timeout_s() -> int:
    return settings.GUILDSITE_EXTERNAL_COMMAND_MAX_TIMEOUT_S
