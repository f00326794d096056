"""Guild services: create, launch, stop, relaunch. Views, consumers and the admin call these."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction
from django.utils import timezone

from guilds.engines import bus_of, engine_for_guild, engine_for_spec, messaging_config_of
from guilds.engines.base import ExecutionEngine
from guilds.external.registry import seats_record
from guilds.lifecycle import LIVE
from guilds.models import Guild, GuildMember, GuildStatus, Run, RunStatus, RunTrigger, Schedule, Trigger
from guilds.runtime import cancellation, formats, runs, store, suspension
from guilds.runtime import loop as runtime_loop
from guilds.runtime.manager import user_proxy_id
from guilds.runtime.requests import system_request
from guilds.spec import GuildSpec
from guildsite.accounts.models import Organization
from messaging import topics as topic_names
from messaging.message import AgentTag, Message

logger = logging.getLogger(__name__)


def guild_create(
    *,
    spec: GuildSpec,
    name: str,
    launched_by: AbstractBaseUser | None,
    organization: Organization | None,
    description: str | None = None,
    blueprint_id: str | None = None,
    launch: bool = True,
) -> Guild:
    """Store a guild with its spec (status REQUESTED), its launcher as its first member, and once
    committed, launch it. SeatRefused if it seats an external agent of another organisation."""
    spec = spec.model_copy(update={"name": name, **({"description": description} if description else {})})
    guild = Guild(
        name=name,
        description=spec.description,
        blueprint_id=blueprint_id,
        organization=organization,
        launched_by=launched_by,
        status=GuildStatus.REQUESTED,
    )
    spec = spec.model_copy(update={"id": guild.id})
    guild.spec = spec.model_dump(mode="json")
    with transaction.atomic():
        guild.save(force_insert=True)
        seats_record(guild)
        if launched_by is not None:
            GuildMember.objects.create(guild=guild, user=launched_by)
    logger.info("guild created", extra={"guild_id": guild.id, "guild_name": name})
    if launch:
        guild_id = guild.id
        transaction.on_commit(lambda: guild_launch(guild_id=guild_id))
    return guild


def guild_member_add(*, guild: Guild, user: AbstractBaseUser) -> None:
    """A user joined (the user socket): they are a member from now on."""
    GuildMember.objects.get_or_create(guild=guild, user=user)


def guild_launch(*, guild_id: str) -> None:
    """Start the guild's manager agent on the site's engine (see guilds.engines)."""
    engine_for_guild(guild_id).launch_guild(guild_id)


class RunFinished(Exception):
    """The run has ended: there is nothing to cancel."""


def run_cancel(*, run: Run) -> None:
    """Ask a queued or running run to stop (the caller checked permissions.run_cancel_check). Its agent closes the
    provider's stream within GUILDSITE_RUN_CANCEL_POLL_SECONDS, keeps the partial answer and marks it cancelled."""
    if run.status not in (RunStatus.QUEUED, RunStatus.RUNNING):
        raise RunFinished(f"run {run.pk} has ended ({run.status}): there is nothing to cancel")
    cancellation.request_cancel(run.pk)
    logger.info("run cancel requested", extra={"guild_id": run.guild_id, "run_id": run.pk})


class GuildStopped(Exception):
    """The guild is STOPPED: final, launch a new one from the blueprint instead."""


async def guild_resume(*, guild_id: str, spec: dict) -> bool:
    """Someone uses the guild (a socket connecting, a message for its agents; the entry point for anything
    that starts a run): it counts as used, and a suspended guild is relaunched first, keeping its status.
    Call on the runtime loop; True if it was suspended."""
    return await suspension.resume(engine_for_spec(spec), guild_id)


def guild_wake(*, guild_id: str) -> bool:
    """guild_resume from sync code (views, the admin)."""
    spec = Guild.objects.filter(pk=guild_id).values_list("spec", flat=True).first()
    return spec is not None and runtime_loop.run(guild_resume(guild_id=guild_id, spec=spec))


def guild_relaunch(*, guild_id: str) -> bool:
    """Start a guild whose agents are gone (server restart, ERROR, suspended). True if a launch began."""
    guild = Guild.objects.get(pk=guild_id)
    if guild.status == GuildStatus.STOPPED:
        raise GuildStopped(f"guild {guild_id} is stopped; launch a new guild from its blueprint instead")
    if guild.suspended and guild_wake(guild_id=guild_id):
        return True
    engine = engine_for_guild(guild_id)
    if guild.status == GuildStatus.ERROR:
        runtime_loop.run(engine.forget(guild_id))  # whatever is left of it starts over
    elif engine.is_guild_running(guild_id):
        return False
    return runtime_loop.run(engine.launch(guild_id))


def guild_stop(*, guild_id: str, user_id: str, timeout: float = 10.0) -> Guild:
    """Stop the guild as the system socket's stopGuildRequest does; waits for STOPPED, and until the
    manager has retired the guild."""
    guild = Guild.objects.get(pk=guild_id)
    if guild.status == GuildStatus.STOPPED:
        raise GuildStopped(f"guild {guild_id} is already stopped")
    engine = engine_for_spec(guild.spec)
    if engine.is_guild_running(guild_id):
        runtime_loop.run(_stopped_by_its_manager(engine, guild, user_id, timeout), timeout=2 * timeout + 5)
    else:
        # Nothing runs it (it never started, or its process is gone): record the stop.
        runtime_loop.run(store.guild_status_set(guild_id, GuildStatus.STOPPED, f"stopped by {user_id}"))
        runtime_loop.run(store.agents_stopped(guild_id))
    guild.refresh_from_db()
    return guild


async def _stopped_by_its_manager(engine: ExecutionEngine, guild: Guild, user_id: str, timeout: float) -> None:
    await system_request(engine.bus(guild.id, messaging_config_of(guild.spec)), format_name=formats.STOP_GUILD_REQUEST,
                         payload={"guild_id": guild.id, "user_id": user_id}, user_id=user_id,
                         await_status=GuildStatus.STOPPED, timeout=timeout)
    await engine.wait_stopped(guild.id, timeout)  # the manager retires its guild just after announcing STOPPED


def guilds_relaunch_live() -> list[str]:
    """On server start: relaunch every guild that should be running and is not suspended (the next socket
    or message resumes those). Returns their ids."""
    relaunched = []
    for guild_id in Guild.objects.filter(status__in=LIVE, suspended=False).values_list("pk", flat=True):
        try:
            if guild_relaunch(guild_id=guild_id):
                relaunched.append(guild_id)
        except Exception:
            logger.exception("relaunch on start failed", extra={"guild_id": guild_id})
    return relaunched


async def _proxy_running(engine: ExecutionEngine, guild_id: str, proxy_id: str, timeout: float = 10.0) -> None:
    loop = asyncio.get_running_loop()
    deadline, pause = loop.time() + timeout, 0.005
    while proxy_id not in await engine.running_agent_ids(guild_id):
        if loop.time() > deadline:
            logger.warning("the user's proxy is not up: a reply may not reach the user", extra={"guild_id": guild_id})
            return
        await asyncio.sleep(pause)  # the manager starts it: its roster is what we see
        pause = min(0.1, pause * 2)


def guild_message_post(*, guild: Guild, user: AbstractBaseUser, user_name: str, message_of: Callable[[], Message],
                       to_agent: str | None = None) -> tuple[Message, Run | None]:
    """A user's message from outside a socket (POST /api/guilds/{id}/messages), sent as the user socket sends
    one: the guild resumed first if suspended, the user a member, their proxy asked for (it catches up on
    its inbox, so a message sent before it is up waits there), and the message on the user's inbox, from
    where the proxy carries it into the guild and replies come back to the user's sockets and history.
    `message_of` makes the message: it is made after the proxy request, since a proxy starting catches up
    only on what its inbox got from the request's time on (ids carry their creation time). `to_agent`: the
    message goes to that agent's inbox alone, as the user's proxy would forward it (the proxy's routing,
    which the user socket also uses, knows no such thing: a frame's recipient_list only tags). The message is the
    trigger `api`'s: each agent's handling of it is a run; with `to_agent`, that run is made now, queued, and
    returned (without, the routes decide which agents take it, and their runs start when they do)."""
    if guild.status == GuildStatus.STOPPED:
        raise GuildStopped(f"guild {guild.pk} is stopped; launch a new guild from its blueprint instead")
    guild_member_add(guild=guild, user=user)
    user_id = user.get_username()

    engine = engine_for_spec(guild.spec)

    async def send() -> tuple[Message, Run | None]:
        await guild_resume(guild_id=guild.pk, spec=guild.spec)
        bus = bus_of(guild.pk, guild.spec)
        await system_request(bus, format_name=formats.USER_AGENT_CREATION_REQUEST,
                             payload={"user_id": user_id, "user_name": user_name}, user_id=user_id)
        if to_agent is not None:
            # Its reply goes to the proxy's inbox, which a proxy still starting would not hear.
            await _proxy_running(engine, guild.pk, user_proxy_id(user_id))
        message = message_of().model_copy(update={"trigger": RunTrigger.API})
        run = None
        if to_agent is not None:
            message = message.model_copy(update={
                "sender": AgentTag(id=user_proxy_id(user_id), name=user_name),
                "topics": [topic_names.agent_inbox(to_agent), topic_names.user_notifications(user_id)]})
            run = await runs.run_queue(guild_id=guild.pk, agent_id=to_agent, message_id=message.id,
                                       trigger=RunTrigger.API, requester=user_id)
        return await bus.publish(message), run

    sent, run = runtime_loop.run(send())
    logger.info("user message posted", extra={"guild_id": guild.pk, "message_id": sent.id, "user_id": user_id})
    return sent, run


def schedule_message_send(*, schedule: Schedule) -> tuple[Message, Run | None]:
    """A schedule's firing (or its "run now"): its message into the guild as the schedule (`schedule-{id}`, named
    as the schedule), to its agent's inbox or the guild's default topic, with the trigger `schedule`: each
    agent's handling of it is a run, made now, queued, when the schedule names its agent. The guild is resumed
    first if suspended."""
    if schedule.guild.status == GuildStatus.STOPPED:
        raise GuildStopped(f"guild {schedule.guild_id} is stopped; its schedules no longer fire")
    if schedule.guild.status not in (GuildStatus.RUNNING, GuildStatus.WARNING):
        raise GuildNotReady(f"guild {schedule.guild_id} is {schedule.guild.status}: a schedule fires while it is "
                            f"RUNNING or WARNING; try again once it is")
    sent = schedule_messages_send(schedules=[schedule])
    if not sent:
        raise RuntimeError(f"schedule {schedule.pk} could not be sent (the log says why)")
    return sent[0]


async def _automated_send(guild: Guild, *, sender: AgentTag, agent_id: str, format_name: str, payload: dict,
                          trigger: str) -> tuple[Message, Run | None]:
    """A message that something other than a user sends (a schedule, a trigger), to its agent's inbox (its run made
    now, queued) or, without an agent, the guild's default topic (runs start as agents take it)."""
    message = Message.create(sender=sender,
                             topics=topic_names.agent_inbox(agent_id) if agent_id else topic_names.DEFAULT_TOPIC,
                             format=format_name, payload=payload, trigger=trigger)
    run = None
    if agent_id:  # before the message: its agent finds it queued
        run = await runs.run_queue(guild_id=guild.pk, agent_id=agent_id, message_id=message.id, trigger=trigger,
                                   requester=sender.id)
    try:
        return await bus_of(guild.pk, guild.spec).publish(message), run
    except Exception:
        if run is not None:  # the message was refused: no run waits for it
            await runs.run_discard_queued(run.pk)
        raise


def trigger_event_send(*, trigger: Trigger, text: str) -> tuple[Message, Run]:
    """A trigger's accepted event (guilds.triggers) to its agent as a text message from `trigger-{id}`, with the
    trigger `webhook`; the guild resumed first if suspended."""
    guild = trigger.guild
    if guild.status == GuildStatus.STOPPED:
        raise GuildStopped(f"guild {guild.pk} is stopped; its triggers no longer fire")

    async def send() -> tuple[Message, Run | None]:
        await guild_resume(guild_id=guild.pk, spec=guild.spec)
        return await _automated_send(guild, sender=AgentTag(id=trigger.sender_id, name=trigger.sender_id),
                                     agent_id=trigger.agent_id, format_name=formats.TEXT, payload={"text": text},
                                     trigger=RunTrigger.WEBHOOK)

    sent, run = runtime_loop.run(send())
    assert run is not None  # a trigger always names its agent
    return sent, run


SCHEDULE_SENDS_AT_ONCE = 100
SCHEDULE_SEND_SECONDS = 60.0  # a batch's sends, beyond which the tick gives up on them (logged) rather than hang


class GuildNotReady(Exception):
    """The guild is starting or in ERROR: a schedule does not fire into it now."""


def schedule_messages_send(*, schedules: list[Schedule]) -> list[tuple[Message, Run | None]]:
    """Several firings at once (a tick's), each as schedule_message_send sends one: each guild resumed once, the
    messages published side by side, their schedules' last firing written in one statement. A firing that
    cannot be sent is logged and left out."""
    async def one(schedule: Schedule) -> tuple[Message, Run | None]:
        return await _automated_send(schedule.guild, sender=AgentTag(id=schedule.sender_id,
                                                                     name=schedule.name or schedule.sender_id),
                                     agent_id=schedule.agent_id, format_name=schedule.format,
                                     payload=schedule.payload, trigger=RunTrigger.SCHEDULE)

    async def send_all() -> list[tuple[Schedule, Message, Run | None]]:
        guilds = {schedule.guild_id: schedule.guild for schedule in schedules}
        ready = set()
        for guild in guilds.values():
            try:
                await guild_resume(guild_id=guild.pk, spec=guild.spec)
                ready.add(guild.pk)
            except Exception:  # that guild's firings are lost (said); the others' are sent
                logger.exception("a guild could not be resumed for its schedules", extra={"guild_id": guild.pk})
        sendable = [schedule for schedule in schedules if schedule.guild_id in ready]
        done = []
        for start in range(0, len(sendable), SCHEDULE_SENDS_AT_ONCE):
            batch = sendable[start:start + SCHEDULE_SENDS_AT_ONCE]
            for schedule, outcome in zip(batch, await asyncio.gather(*(one(s) for s in batch), return_exceptions=True),
                                         strict=True):
                if isinstance(outcome, BaseException):
                    logger.error("a schedule's firing could not be sent: %s", outcome, exc_info=outcome,
                                 extra={"guild_id": schedule.guild_id, "schedule_id": schedule.pk})
                else:
                    done.append((schedule, *outcome))
        return done

    sent = runtime_loop.run(send_all(), timeout=SCHEDULE_SEND_SECONDS + len(schedules) * 0.01)
    now = timezone.now()
    for schedule, _, run in sent:
        schedule.last_run_at, schedule.last_run_id = now, run.pk if run is not None else ""
    Schedule.objects.bulk_update([schedule for schedule, _, _ in sent], ["last_run_at", "last_run_id"], batch_size=500)
    for schedule, message, _ in sent:
        logger.info("schedule fired", extra={"guild_id": schedule.guild_id, "schedule_id": schedule.pk,
                                             "message_id": message.id})
    return [(message, run) for _, message, run in sent]
