"""The gRPC server (seed 003's services, guilds.grpc.services, and the standard health service): in the web
process on the embedded default (guildsite.startup), or a process of its own (`manage.py rungrpc`). Either way
it runs on the runtime loop, with the live hub the services follow."""

from __future__ import annotations

import logging

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from guildsite_agent.protos import agent_registration_service_pb2_grpc as registration_grpc
from guildsite_agent.protos import agent_status_service_pb2_grpc as status_grpc
from guildsite_agent.protos import broker_registration_service_pb2_grpc as broker_grpc

from guilds.grpc import services

logger = logging.getLogger(__name__)

SERVICE_NAMES = ("agent_registration.AgentRegistrationService", "agent_status.AgentStatusService",
                 "broker_registration.BrokerRegistrationService")
MESSAGE_MAX_BYTES = 4 * 1024 * 1024  # a command result's output (1 MB stored) with room to spare
MAX_CONCURRENT_RPCS = 10_000  # calls and open streams at once; more are refused (RESOURCE_EXHAUSTED)


async def grpc_server_start(host: str, port: int) -> tuple[grpc.aio.Server, int]:
    """Start serving on host:port (0: any free port); (the server, the port it listens on)."""
    server = grpc.aio.server(maximum_concurrent_rpcs=MAX_CONCURRENT_RPCS, options=[
        ("grpc.max_receive_message_length", MESSAGE_MAX_BYTES), ("grpc.max_send_message_length", MESSAGE_MAX_BYTES),
        # A client gone without a word (NAT, sleep) is noticed within ~40 s and its streams end.
        ("grpc.keepalive_time_ms", 30_000), ("grpc.keepalive_timeout_ms", 10_000),
        ("grpc.http2.min_ping_interval_without_data_ms", 10_000)])
    registration_grpc.add_AgentRegistrationServiceServicer_to_server(services.AgentRegistrationService(), server)
    status_grpc.add_AgentStatusServiceServicer_to_server(services.AgentStatusService(), server)
    broker_grpc.add_BrokerRegistrationServiceServicer_to_server(services.BrokerRegistrationService(), server)
    checks = health.aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(checks, server)
    bound = server.add_insecure_port(f"{host}:{port}")
    await server.start()
    for name in ("", *SERVICE_NAMES):
        await checks.set(name, health_pb2.HealthCheckResponse.SERVING)
    server.health = checks  # grpc_server_stop says NOT_SERVING first
    logger.info("gRPC serving on %s:%d", host, bound)
    return server, bound


async def grpc_server_stop(server: grpc.aio.Server, grace: float = 5.0) -> None:
    """Health says NOT_SERVING (balancers stop sending), then calls get `grace` seconds to end."""
    await server.health.enter_graceful_shutdown()
    await server.stop(grace=grace)
