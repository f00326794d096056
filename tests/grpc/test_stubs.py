"""The committed gRPC stubs are what the committed .proto files generate, and the services keep seed 003's names."""

from __future__ import annotations

from guildsite_agent.protos import agent_registration_service_pb2 as registration_pb2
from guildsite_agent.protos import agent_status_service_pb2 as status_pb2
from guildsite_agent.protos import broker_registration_service_pb2 as broker_pb2

from guilds.grpc import stubs


def test_the_committed_stubs_are_what_the_protos_generate(tmp_path):
    generated = stubs.generate(tmp_path)
    assert len(generated) == 3 * len(stubs.proto_files())
    for path in generated:
        committed = stubs.PROTOS / path.name
        assert committed.read_bytes() == path.read_bytes(), f"{committed} differs: run python -m guilds.grpc.stubs"
    assert {path.name for path in stubs.PROTOS.glob("*_pb2*")} == {path.name for path in generated}  # none stale


def test_the_wire_names_are_seed_003s():
    # What a client of the original system calls: package.Service/Method, and the fields by number.
    services = {s.full_name: sorted(m.name for m in s.methods) for pb2 in (registration_pb2, status_pb2, broker_pb2)
                for s in pb2.DESCRIPTOR.services_by_name.values()}
    assert services == {
        "agent_registration.AgentRegistrationService": ["ReceiveCommands", "RegisterAgent", "SendCommandResult",
                                                        "SendHeartbeat", "UnregisterAgent"],
        "agent_status.AgentStatusService": ["GetAgentStatus", "SendAgentStatus", "SubscribeToAgentStatus"],
        "broker_registration.BrokerRegistrationService": ["RegisterBroker"],
    }
    result = {f.name: (f.number, f.type) for f in registration_pb2.CommandResult.DESCRIPTOR.fields}
    assert result == {"command_id": (1, 9), "agent_id": (2, 9), "success": (3, 8), "output": (4, 9),
                      "error_message": (5, 9), "exit_code": (6, 5), "execution_time_ms": (7, 3)}
    command = {f.name: f.number for f in registration_pb2.Command.DESCRIPTOR.fields}
    assert command == {"command_id": 1, "type": 2, "content": 3, "parameters": 4, "is_cancellation": 5}
    info = {f.name: f.number for f in status_pb2.AgentInfo.DESCRIPTOR.fields}
    assert info == {"agent_id": 1, "agent_name": 2, "last_seen": 3, "metrics": 4}
