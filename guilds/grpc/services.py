"""Seed 003's gRPC services over the external agents' service layer (guilds.external): the same registrations,
presence, commands and status as /ws/agents/, another transport. Messages for agents stay on the WebSocket.

Every call carries the agent's key in its metadata (`authorization: Bearer <key>`): none or a bad one is
UNAUTHENTICATED; a request naming an agent other than the key's is NOT_FOUND, whatever that agent is.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import time
from collections import OrderedDict
from collections.abc import AsyncIterator
from typing import Any

import grpc
from django.conf import settings
from django.utils import timezone
from guildsite_agent.protos import (
    agent_registration_service_pb2 as registration_pb2,
)
from guildsite_agent.protos import (
    agent_registration_service_pb2_grpc as registration_grpc,
)
from guildsite_agent.protos import (
    agent_status_service_pb2 as status_pb2,
)
from guildsite_agent.protos import (
    agent_status_service_pb2_grpc as status_grpc,
)
from guildsite_agent.protos import (
    broker_registration_service_pb2 as broker_pb2,
)
from guildsite_agent.protos import (
    broker_registration_service_pb2_grpc as broker_grpc,
)

from guilds.external import commands, presence, registry, signals
from guilds.models import ExternalAgent, ExternalCommand, ExternalStatus
from guilds.runtime.store import on_db_threads as _db
from guilds.sockets.live_hub import live_hub
from guildsite.accounts.tokens import CredentialError, secret_hash
from messaging.message import Message

logger = logging.getLogger(__name__)

# Seed 003's statuses, and ours, to ours.
_STATUSES = {"online": ExternalStatus.ONLINE, "idle": ExternalStatus.ONLINE, "busy": ExternalStatus.BUSY,
             "offline": ExternalStatus.OFFLINE}
TEXT_MAX = 256  # a metric value, as text (as the WebSocket keeps them)


def _bearer(context: grpc.aio.ServicerContext) -> str:
    for key, value in context.invocation_metadata() or ():
        if key.lower() == "authorization":
            scheme, _, credential = str(value).strip().partition(" ")
            return credential.strip() if scheme.lower() == "bearer" else ""
    return ""


# Keys recently found valid, by their hash: a heartbeat a second is not four queries a second. A key revoked
# (or its agent deleted) stops working within ADMITTED_SECONDS; open streams look again themselves.
ADMITTED_SECONDS = 5.0
_admitted: OrderedDict[str, tuple[float, ExternalAgent]] = OrderedDict()


async def _caller(context: grpc.aio.ServicerContext, named: str = "") -> ExternalAgent:
    """The agent whose key the call carries; the call is aborted if there is none, or it names another agent."""
    credential = _bearer(context)
    digest = secret_hash(credential)
    cached = _admitted.get(digest)
    if cached is not None and cached[0] > time.monotonic():
        agent = cached[1]
    else:
        try:
            agent = await _db(registry.agent_for_credential)(credential)
        except (CredentialError, registry.NotAnAgentKey) as exc:
            _admitted.pop(digest, None)
            await context.abort(grpc.StatusCode.UNAUTHENTICATED, f"{exc}: send 'authorization: Bearer <agent key>'")
        _admitted[digest] = (time.monotonic() + ADMITTED_SECONDS, agent)
        while len(_admitted) > 10_000:
            _admitted.popitem(last=False)
    if named and named != agent.pk:
        await context.abort(grpc.StatusCode.NOT_FOUND, f"agent '{named}' not found")
    return agent


def _texts(mapping: Any) -> dict[str, str]:
    return {str(k)[:64]: str(v)[:TEXT_MAX] for k, v in list(dict(mapping).items())[:presence.METRICS_MAX_KEYS]}


def _status(text: str) -> str:
    return _STATUSES.get(text.strip().lower(), ExternalStatus.ONLINE)


def _command_message(command: ExternalCommand) -> registration_pb2.Command:
    parameters = {str(k): v if isinstance(v, str) else json.dumps(v) for k, v in (command.parameters or {}).items()}
    return registration_pb2.Command(command_id=command.pk, type=command.type, content=command.content,
                                    parameters=parameters, is_cancellation=command.is_cancellation)


def _agent_info(entry: dict[str, Any]) -> status_pb2.AgentInfo:
    # The agent's own metrics first: what the server knows (its status above all) is not theirs to shadow.
    metrics = {**{str(k): str(v) for k, v in (entry["metrics"] or {}).items()},
               "status": entry["status"], "version": entry["version"], "hostname": entry["hostname"],
               "platform": entry["platform"], "capabilities": ",".join(entry["capabilities"] or [])}
    return status_pb2.AgentInfo(agent_id=entry["agent_id"], agent_name=entry["name"],
                                last_seen=entry["last_seen_at"] or "", metrics=metrics)


class _Follower:
    """A live-hub follower feeding one stream (the hub tells it on this loop). A stream too far behind loses
    events, and is told so (`overflowed`): it reads the database afresh instead."""

    def __init__(self) -> None:
        self.events: asyncio.Queue[Message] = asyncio.Queue(maxsize=1_000)
        self.overflowed = False

    def take(self, frame: bytes, event: Message) -> None:
        try:
            self.events.put_nowait(event)
        except asyncio.QueueFull:
            self.overflowed = True

    async def next_event(self, timeout: float) -> Message | None:
        try:
            return await asyncio.wait_for(self.events.get(), timeout)
        except TimeoutError:
            return None


async def _still_admitted(context: grpc.aio.ServicerContext, agent: ExternalAgent) -> None:
    """A stream looks at its key again now and then (revoked, expired, its agent deleted: UNAUTHENTICATED)."""
    try:
        await _db(registry.agent_still_admitted)(agent.pk, _bearer(context))
    except (CredentialError, registry.NotAnAgentKey) as exc:
        await context.abort(grpc.StatusCode.UNAUTHENTICATED, str(exc))


class AgentRegistrationService(registration_grpc.AgentRegistrationServiceServicer):
    async def RegisterAgent(self, request, context):
        agent = await _caller(context, request.agent_id)
        capabilities = [key if value in ("", "true", "1") else f"{key}={value}"
                        for key, value in sorted(request.capabilities.items())][:presence.CAPABILITIES_MAX]
        metadata = presence.registration_metadata({"version": request.version, "capabilities": capabilities,
                                                   "hostname": request.hostname, "platform": request.platform})
        agent, changed = await _db(presence.agent_seen)(agent.pk, ExternalStatus.ONLINE,
                                                                            metadata=metadata)
        if changed:
            await presence.announce(agent)
        return registration_pb2.AgentRegistrationResponse(success=True, message=f"registered {agent.name}",
                                                          server_assigned_id=agent.pk)

    async def UnregisterAgent(self, request, context):
        agent = await _caller(context, request.agent_id)
        agent, changed = await _db(presence.agent_seen)(agent.pk, ExternalStatus.OFFLINE)
        if changed:
            await presence.announce(agent)
        return registration_pb2.AgentUnregistrationResponse(success=True, message=f"{agent.name} is offline")

    async def SendHeartbeat(self, request, context):
        agent = await _caller(context, request.agent_id)
        metrics = _texts(request.metrics)
        metrics.pop("status", None)  # the status is the request's own field
        agent, changed = await _db(presence.agent_seen)(agent.pk, _status(request.status),
                                                                            metrics=metrics)
        if changed:
            await presence.announce(agent)
        return registration_pb2.HeartbeatResponse(success=True,
                                                  interval=max(1, math.ceil(presence.heartbeat_interval())))

    async def ReceiveCommands(self, request, context) -> AsyncIterator[registration_pb2.Command]:
        agent = await _caller(context, request.agent_id)
        hub, follower, topic = await live_hub(), _Follower(), signals.work_topic(agent.pk)
        await hub.follow(topic, follower)
        try:
            resend, claim = True, True  # a new stream: what was sent before and not finished goes again
            recheck_at = time.monotonic() + settings.GUILDSITE_WS_RECHECK_SECONDS
            while True:
                if claim or follower.overflowed:
                    follower.overflowed = False
                    for command in await _db(commands.commands_claim)(agent.pk, resend=resend):
                        yield _command_message(command)
                    resend = False
                event = await follower.next_event(settings.GUILDSITE_EXTERNAL_PING_SECONDS)
                if event is not None and event.payload.get("revoked"):
                    await context.abort(grpc.StatusCode.UNAUTHENTICATED, "this agent was deleted")
                # Commands are read when one waits, and now and then in case a wake-up was lost.
                claim = event is None or bool(event.payload.get("commands"))
                if time.monotonic() >= recheck_at:
                    recheck_at = time.monotonic() + settings.GUILDSITE_WS_RECHECK_SECONDS
                    await _still_admitted(context, agent)
        finally:
            await asyncio.shield(hub.unfollow([topic], follower))  # also when the client cancels the stream

    async def SendCommandResult(self, request, context):
        agent = await _caller(context, request.agent_id)
        try:
            state = await _db(commands.command_result)(
                agent.pk, request.command_id, success=request.success, output=request.output,
                error_message=request.error_message, exit_code=request.exit_code,
                execution_time_ms=max(0, request.execution_time_ms))
        except KeyError:
            await context.abort(grpc.StatusCode.NOT_FOUND, f"command '{request.command_id}' not found")
        return registration_pb2.CommandResultResponse(received=True, message=f"the command is {state}")


class AgentStatusService(status_grpc.AgentStatusServiceServicer):
    async def SubscribeToAgentStatus(self, request, context) -> AsyncIterator[status_pb2.AgentStatusResponse]:
        agent = await _caller(context)
        hub, follower, topic = await live_hub(), _Follower(), signals.status_topic(agent.organization_id)
        await hub.follow(topic, follower)  # before the snapshot: no change falls between the two
        try:
            full = True
            recheck_at = time.monotonic() + settings.GUILDSITE_WS_RECHECK_SECONDS
            while True:
                if full or follower.overflowed:  # the first answer, and again after events were lost
                    follower.overflowed = full = False
                    snapshot = await _db(presence.status_snapshot)(agent.organization_id)
                    yield status_pb2.AgentStatusResponse(agents=[_agent_info(e) for e in snapshot], is_full_update=True)
                event = await follower.next_event(settings.GUILDSITE_EXTERNAL_PING_SECONDS)
                if event is not None:
                    yield status_pb2.AgentStatusResponse(agents=[_agent_info(event.payload)], is_full_update=False)
                if time.monotonic() >= recheck_at:
                    recheck_at = time.monotonic() + settings.GUILDSITE_WS_RECHECK_SECONDS
                    await _still_admitted(context, agent)
        finally:
            await asyncio.shield(hub.unfollow([topic], follower))

    async def GetAgentStatus(self, request, context):
        agent = await _caller(context)
        snapshot = await _db(presence.status_snapshot)(agent.organization_id)
        return status_pb2.AgentStatusResponse(agents=[_agent_info(e) for e in snapshot], is_full_update=True)

    async def SendAgentStatus(self, request, context):
        agent = await _caller(context, request.agent.agent_id)
        metrics = _texts(request.agent.metrics)
        status = _status(metrics.pop("status", "online"))
        agent, changed = await _db(presence.agent_seen)(agent.pk, status, metrics=metrics)
        if changed:
            await presence.announce(agent)
        return status_pb2.AgentStatusUpdateResponse(success=True, message=f"{agent.name} is {status}")


class BrokerRegistrationService(broker_grpc.BrokerRegistrationServiceServicer):
    async def RegisterBroker(self, request, context):
        # guildsite routes messages itself: a broker needs no role beyond its key; it may follow status.
        agent = await _caller(context)
        logger.info("broker registered", extra={"external_agent_id": agent.pk, "broker_id": request.broker_id[:128]})
        return broker_pb2.BrokerRegistrationResponse(
            success=True, message=f"broker {request.broker_name[:128] or request.broker_id[:128]} registered "
                                  f"({timezone.now().isoformat()})")
