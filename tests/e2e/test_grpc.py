"""Seed 003's gRPC interface against a live server, with a client made from our protos' stubs: served in the web
process (the embedded default's way) and, in the services pass, by `manage.py rungrpc` (production's); in
development mode (a key is needed all the same)."""

from __future__ import annotations

import os
import queue
import subprocess
import sys
import threading
import time

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from guildsite_agent.protos import agent_registration_service_pb2 as reg
from guildsite_agent.protos import agent_registration_service_pb2_grpc as reg_grpc
from guildsite_agent.protos import agent_status_service_pb2 as st
from guildsite_agent.protos import agent_status_service_pb2_grpc as st_grpc
from guildsite_agent.protos import broker_registration_service_pb2 as br
from guildsite_agent.protos import broker_registration_service_pb2_grpc as br_grpc

from tests.support.live_server import ROOT, LiveServer, free_port, service_env

DEV = {"X-User-Id": "alice"}


# A `rungrpc` process hears the web process's wake-ups over Redis: production's way, so the services pass runs it.
MODES = ["in-process", "rungrpc"] if os.environ.get("GUILDSITE_TEST_SERVICES") else ["in-process"]


@pytest.fixture(scope="module", params=MODES)
def served(request):
    """(server, gRPC port): the web process serving gRPC itself, or a `rungrpc` process beside it."""
    port = free_port()
    in_process = request.param == "in-process"
    server = LiveServer(env={"GUILDSITE_EXTERNAL_HEARTBEAT_SECONDS": "2", "GUILDSITE_EXTERNAL_MISSED_HEARTBEATS": "2",
                             "GUILDSITE_EXTERNAL_PING_SECONDS": "1",
                             "GUILDSITE_GRPC_IN_PROCESS": "1" if in_process else "0",
                             "GRPC_PORT": str(port) if in_process else "0", **service_env()})
    server.migrate()
    server.start()
    grpc_process = None
    if not in_process:
        grpc_process = subprocess.Popen([sys.executable, "manage.py", "rungrpc", "--port", str(port)], cwd=ROOT,
                                        env=server.env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        grpc.channel_ready_future(channel).result(timeout=30)
    yield server, port
    if grpc_process is not None:
        grpc_process.terminate()
        grpc_process.wait(10)
    server.stop()


@pytest.fixture
def channel(served):
    with grpc.insecure_channel(f"127.0.0.1:{served[1]}") as made:
        yield made


def register(server: LiveServer, name: str, org: str = "org-a", user: str = "alice") -> tuple[str, str]:
    status, made = server.request("POST", "/api/external-agents", {"organization_id": org, "name": name},
                                  headers={"X-User-Id": user})
    assert status == 201, made
    return made["id"], made["key"]


def auth(key: str) -> list[tuple[str, str]]:
    return [("authorization", f"Bearer {key}")]


def rest(server: LiveServer, path: str, user: str = "alice") -> dict:
    status, body = server.request("GET", path, headers={"X-User-Id": user})
    assert status == 200, body
    return body


def streamed(call) -> queue.Queue:
    """The messages of a server stream, as they come (read on a thread of their own)."""
    got: queue.Queue = queue.Queue()

    def read() -> None:
        try:
            for item in call:
                got.put(item)
        except grpc.RpcError as error:  # the test's cancel, or a failure the test then sees as an item
            got.put(error)

    threading.Thread(target=read, daemon=True).start()
    return got


def test_no_key_or_a_bad_one_is_unauthenticated_even_in_development(served, channel):
    stub = reg_grpc.AgentRegistrationServiceStub(channel)
    for metadata in ([], auth("gsk_not_a_key"), [("authorization", "Basic abc")]):
        with pytest.raises(grpc.RpcError) as refused:
            stub.RegisterAgent(reg.AgentRegistrationRequest(agent_name="x"), metadata=metadata, timeout=10)
        assert refused.value.code() == grpc.StatusCode.UNAUTHENTICATED
    with pytest.raises(grpc.RpcError) as refused:
        next(iter(st_grpc.AgentStatusServiceStub(channel).SubscribeToAgentStatus(st.AgentStatusRequest(), timeout=10)))
    assert refused.value.code() == grpc.StatusCode.UNAUTHENTICATED


def test_register_heartbeat_status_and_unregister(served, channel):
    server, _ = served
    agent_id, key = register(server, "grpc-agent")
    stub = reg_grpc.AgentRegistrationServiceStub(channel)
    registered = stub.RegisterAgent(reg.AgentRegistrationRequest(
        agent_name="grpc-agent", version="2.1", capabilities={"shell": "true", "gpu": "a100"}, hostname="h1",
        platform="Linux"), metadata=auth(key), timeout=10)
    assert registered.success
    assert registered.server_assigned_id == agent_id
    shown = rest(server, f"/api/external-agents/{agent_id}")
    assert shown["status"] == "online"
    assert shown["version"] == "2.1"
    assert shown["hostname"] == "h1"
    assert shown["capabilities"] == ["gpu=a100", "shell"]

    beat = stub.SendHeartbeat(reg.HeartbeatRequest(agent_id=agent_id, status="BUSY", metrics={"cpu": "0.5"}),
                              metadata=auth(key), timeout=10)
    assert beat.success
    assert beat.interval == 2
    shown = rest(server, f"/api/external-agents/{agent_id}")
    assert shown["status"] == "busy"
    assert shown["metrics"] == {"cpu": "0.5"}

    status_stub = st_grpc.AgentStatusServiceStub(channel)
    pushed = status_stub.SendAgentStatus(st.AgentStatusUpdateRequest(agent=st.AgentInfo(
        agent_id=agent_id, metrics={"status": "online", "queue": "3"})), metadata=auth(key), timeout=10)
    assert pushed.success
    full = status_stub.GetAgentStatus(st.AgentStatusRequest(broker_id="b1"), metadata=auth(key), timeout=10)
    assert full.is_full_update
    mine = next(a for a in full.agents if a.agent_id == agent_id)
    assert mine.agent_name == "grpc-agent"
    assert mine.metrics["status"] == "online"
    assert mine.metrics["queue"] == "3"
    assert mine.last_seen

    gone = stub.UnregisterAgent(reg.AgentUnregistrationRequest(agent_id=agent_id), metadata=auth(key), timeout=10)
    assert gone.success
    assert rest(server, f"/api/external-agents/{agent_id}")["status"] == "offline"


def test_another_agent_is_not_found(served, channel):
    server, _ = served
    _, key = register(server, "mine")
    theirs, _ = register(server, "theirs", org="org-b", user="bob")
    neighbour, _ = register(server, "neighbour")  # same organisation, another agent: not this key's either
    stub = reg_grpc.AgentRegistrationServiceStub(channel)
    for other in (theirs, neighbour, "no-such-agent"):
        with pytest.raises(grpc.RpcError) as refused:
            stub.SendHeartbeat(reg.HeartbeatRequest(agent_id=other, status="ONLINE"), metadata=auth(key), timeout=10)
        assert refused.value.code() == grpc.StatusCode.NOT_FOUND
    full = st_grpc.AgentStatusServiceStub(channel).GetAgentStatus(st.AgentStatusRequest(), metadata=auth(key),
                                                                   timeout=10)
    assert theirs not in {a.agent_id for a in full.agents}  # the key's organisation only
    assert neighbour in {a.agent_id for a in full.agents}


def test_commands_arrive_on_the_stream_and_their_result_is_stored_once(served, channel):
    server, _ = served
    agent_id, key = register(server, "runner")
    stub = reg_grpc.AgentRegistrationServiceStub(channel)
    call = stub.ReceiveCommands(reg.ReceiveCommandsRequest(agent_id=agent_id), metadata=auth(key))
    commands = streamed(call)
    try:
        status, sent = server.request("POST", f"/api/external-agents/{agent_id}/commands",
                                      {"type": "shell", "content": "uname", "parameters": {"n": 2, "tag": "x"}},
                                      headers=DEV)
        assert status == 201, sent
        command = commands.get(timeout=20)
        assert command.command_id == sent["id"]
        assert command.type == "shell"
        assert command.content == "uname"
        assert dict(command.parameters) == {"n": "2", "tag": "x"}
        assert not command.is_cancellation
        for output in ("Linux", "again"):
            answer = stub.SendCommandResult(reg.CommandResult(
                command_id=command.command_id, agent_id=agent_id, success=True, output=output, exit_code=0,
                execution_time_ms=7), metadata=auth(key), timeout=10)
            assert answer.received
        stored = rest(server, f"/api/commands/{sent['id']}")
        assert stored["state"] == "succeeded"
        assert stored["result"] == {"success": True, "output": "Linux", "error_message": "", "exit_code": 0,
                                    "execution_time_ms": 7}

        _, long = server.request("POST", f"/api/external-agents/{agent_id}/commands", {"type": "shell"}, headers=DEV)
        assert commands.get(timeout=20).command_id == long["id"]
        _, cancellation = server.request("POST", f"/api/external-agents/{agent_id}/commands", {"cancel": long["id"]},
                                         headers=DEV)
        told = commands.get(timeout=20)
        assert told.command_id == cancellation["id"]
        assert told.is_cancellation
        assert told.content == long["id"]
        with pytest.raises(grpc.RpcError) as refused:
            stub.SendCommandResult(reg.CommandResult(command_id="nope", agent_id=agent_id), metadata=auth(key),
                                   timeout=10)
        assert refused.value.code() == grpc.StatusCode.NOT_FOUND
        # Deleted: its open stream ends at once, its key refused from then on.
        assert server.request("DELETE", f"/api/external-agents/{agent_id}", headers=DEV)[0] == 204
        ended = commands.get(timeout=20)
        assert isinstance(ended, grpc.RpcError)
        assert ended.code() == grpc.StatusCode.UNAUTHENTICATED
    finally:
        call.cancel()


def test_status_subscribers_get_a_snapshot_then_changes(served, channel):
    server, _ = served
    broker_id, broker_key = register(server, "broker")
    watched_id, watched_key = register(server, "watched")
    registered = br_grpc.BrokerRegistrationServiceStub(channel).RegisterBroker(
        br.BrokerRegistrationRequest(broker_id="broker-1", broker_name="The broker"), metadata=auth(broker_key),
        timeout=10)
    assert registered.success
    call = st_grpc.AgentStatusServiceStub(channel).SubscribeToAgentStatus(st.AgentStatusRequest(broker_id="broker-1"),
                                                                          metadata=auth(broker_key))
    updates = streamed(call)
    try:
        first = updates.get(timeout=20)
        assert first.is_full_update
        assert {broker_id, watched_id} <= {a.agent_id for a in first.agents}
        reg_grpc.AgentRegistrationServiceStub(channel).RegisterAgent(
            reg.AgentRegistrationRequest(agent_name="watched", version="1"), metadata=auth(watched_key), timeout=10)
        deadline = time.monotonic() + 20
        while True:
            change = updates.get(timeout=max(0.01, deadline - time.monotonic()))
            if any(a.agent_id == watched_id for a in change.agents):
                break
        assert not change.is_full_update
        assert change.agents[0].metrics["status"] == "online"
        # It sends no heartbeat: two intervals later it is offline, and the subscriber is told.
        deadline = time.monotonic() + 20
        while True:
            change = updates.get(timeout=max(0.01, deadline - time.monotonic()))
            if any(a.agent_id == watched_id and a.metrics["status"] == "offline" for a in change.agents):
                break
        assert rest(server, f"/api/external-agents/{watched_id}")["status"] == "offline"
    finally:
        call.cancel()


def test_the_health_service_says_serving(served, channel):
    checks = health_pb2_grpc.HealthStub(channel)
    for service in ("", "agent_registration.AgentRegistrationService", "agent_status.AgentStatusService"):
        answer = checks.Check(health_pb2.HealthCheckRequest(service=service), timeout=10)
        assert answer.status == health_pb2.HealthCheckResponse.SERVING


def test_rungrpc_stops_on_sigterm(served):
    server, _ = served
    port = free_port()
    process = subprocess.Popen([sys.executable, "manage.py", "rungrpc", "--port", str(port)], cwd=ROOT,
                               env=server.env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        expected = f"gRPC serving on 127.0.0.1:{port}"
        said = []
        while expected not in said and len(said) < 5:  # the command's own line, after the log's, if it logs
            said.append(process.stdout.readline().strip())
        assert expected in said
    finally:
        process.terminate()
    assert process.wait(20) == 0


def test_the_sdks_grpc_agent_registers_heartbeats_and_runs_commands(served):
    import asyncio

    from guildsite_agent.grpc_agent import GrpcAgent

    server, port = served
    agent_id, key = register(server, "sdk-over-grpc")
    agent = GrpcAgent(f"127.0.0.1:{port}", key, name="sdk-over-grpc", version="3", capabilities={"shell": "true"})

    @agent.command("echo")
    async def echo(cmd):
        return {"output": cmd.content.upper(), "exit_code": 0}

    runner = threading.Thread(target=lambda: asyncio.run(agent.serve()), daemon=True)
    runner.start()
    try:
        deadline = time.monotonic() + 20
        while rest(server, f"/api/external-agents/{agent_id}")["status"] != "online":
            assert time.monotonic() < deadline, "the SDK's gRPC agent never registered"
            time.sleep(0.1)  # a poll interval, within the deadline
        assert rest(server, f"/api/external-agents/{agent_id}")["version"] == "3"
        _, sent = server.request("POST", f"/api/external-agents/{agent_id}/commands",
                                 {"type": "echo", "content": "loud"}, headers=DEV)
        deadline = time.monotonic() + 20
        while (command := rest(server, f"/api/commands/{sent['id']}"))["state"] != "succeeded":
            assert time.monotonic() < deadline, f"the command is {command['state']}"
            time.sleep(0.1)  # a poll interval, within the deadline
        assert command["result"]["output"] == "LOUD"
    finally:
        agent.stop()
        runner.join(15)
    assert not runner.is_alive()
    assert rest(server, f"/api/external-agents/{agent_id}")["status"] == "offline"  # unregistered on its way out
