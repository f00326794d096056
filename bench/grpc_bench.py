"""Seed 003's gRPC interface under load: heartbeats per second from 8 client threads (each call authenticated by
the agent's key, its status written), then commands one after another: each POSTed over REST, taken from the
agent's ReceiveCommands stream, answered with SendCommandResult, and timed until GET /api/commands/{id} shows
its result.

Embedded (gRPC served by the web process), then production when PostgreSQL and Redis answer here (`manage.py
rungrpc`, a process of its own). The load generator is this process.
"""

from __future__ import annotations

import argparse
import http.client
import json
import queue
import subprocess
import sys
import threading
import time
from typing import Any

import grpc
from guildsite_agent.protos import agent_registration_service_pb2 as reg
from guildsite_agent.protos import agent_registration_service_pb2_grpc as reg_grpc

from bench.socket_bench import RESULTS, add_service_arguments, in_both_modes, percentile
from tests.support.live_server import ROOT, LiveServer, free_port

HEADERS = {"X-User-Id": "bench"}


def heartbeats(port: int, agent_id: str, key: str, threads: int, seconds: float) -> dict[str, Any]:
    latencies: list[float] = []
    lock = threading.Lock()
    until = time.perf_counter() + seconds

    def work() -> None:
        mine = []
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            stub = reg_grpc.AgentRegistrationServiceStub(channel)
            while time.perf_counter() < until:
                began = time.perf_counter()
                stub.SendHeartbeat(reg.HeartbeatRequest(agent_id=agent_id, status="ONLINE", metrics={"load": "1"}),
                                   metadata=[("authorization", f"Bearer {key}")], timeout=10)
                mine.append((time.perf_counter() - began) * 1000)
        with lock:
            latencies.extend(mine)

    began = time.perf_counter()
    workers = [threading.Thread(target=work) for _ in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    elapsed = time.perf_counter() - began
    return {"heartbeats": len(latencies), "heartbeats_per_s": round(len(latencies) / elapsed, 1),
            "heartbeat_p50_ms": round(percentile(latencies, 50), 2), "heartbeat_p99_ms": round(percentile(latencies, 99), 2)}


def command_round_trips(server: LiveServer, port: int, agent_id: str, key: str, count: int) -> dict[str, Any]:
    metadata = [("authorization", f"Bearer {key}")]
    arrived: queue.Queue = queue.Queue()
    channel = grpc.insecure_channel(f"127.0.0.1:{port}")
    stub = reg_grpc.AgentRegistrationServiceStub(channel)
    call = stub.ReceiveCommands(reg.ReceiveCommandsRequest(agent_id=agent_id), metadata=metadata)

    def read() -> None:
        try:
            for command in call:
                arrived.put(command)
        except grpc.RpcError:
            pass

    threading.Thread(target=read, daemon=True).start()
    http_connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)

    def call_rest(method: str, path: str, body: dict | None = None) -> dict:
        http_connection.request(method, path, body=json.dumps(body) if body is not None else None,
                                headers={**HEADERS, "Content-Type": "application/json"})
        return json.loads(http_connection.getresponse().read())

    timings = []
    for number in range(count + 5):
        began = time.perf_counter()
        made = call_rest("POST", f"/api/external-agents/{agent_id}/commands", {"type": "run", "content": str(number)})
        command = arrived.get(timeout=30)
        stub.SendCommandResult(reg.CommandResult(command_id=command.command_id, agent_id=agent_id, success=True,
                                                 output=command.content, execution_time_ms=0), metadata=metadata,
                               timeout=10)
        while call_rest("GET", f"/api/commands/{made['id']}")["state"] != "succeeded":
            pass
        if number >= 5:  # the first few warm up
            timings.append((time.perf_counter() - began) * 1000)
    call.cancel()
    channel.close()
    http_connection.close()
    return {"commands": count, "command_p50_ms": round(percentile(timings, 50), 2),
            "command_p99_ms": round(percentile(timings, 99), 2)}


def run_mode(name: str, env: dict[str, str], args: argparse.Namespace, workers: int = 1) -> list[dict[str, Any]]:
    port = free_port()
    in_process = name == "embedded"
    server = LiveServer(env={"LOG_LEVEL": "WARNING", "GUILDSITE_GRPC_IN_PROCESS": "1" if in_process else "0",
                             "GRPC_PORT": str(port) if in_process else "0", **env}, worker_count=workers)
    server.migrate()
    server.start()
    grpc_process = None
    try:
        if not in_process:
            grpc_process = subprocess.Popen([sys.executable, "manage.py", "rungrpc", "--port", str(port)], cwd=ROOT,
                                            env=server.env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            grpc.channel_ready_future(channel).result(timeout=30)
        status, made = server.request("POST", "/api/external-agents", {"organization_id": "bench", "name": "bench"},
                                      headers=HEADERS)
        assert status == 201, made
        row = heartbeats(port, made["id"], made["key"], args.threads, args.seconds)
        row.update(command_round_trips(server, port, made["id"], made["key"], args.commands))
    finally:
        if grpc_process is not None:
            grpc_process.terminate()
            grpc_process.wait(10)
        server.stop()
    row["mode"] = name
    return [row]


def main(argv: list[str] | None = None) -> list[dict[str, Any]]:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--threads", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--commands", type=int, default=200)
    add_service_arguments(parser)
    rows = in_both_modes(run_mode, parser.parse_args(argv))
    print(f"\n{'mode':<11}{'heartbeats/s':>13}{'p50 ms':>8}{'p99 ms':>8}{'commands':>10}{'cmd p50 ms':>12}"
          f"{'cmd p99 ms':>12}")
    for row in rows:
        print(f"{row['mode']:<11}{row['heartbeats_per_s']:>13}{row['heartbeat_p50_ms']:>8}{row['heartbeat_p99_ms']:>8}"
              f"{row['commands']:>10}{row['command_p50_ms']:>12}{row['command_p99_ms']:>12}")
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "grpc.json").write_text(json.dumps(rows, indent=2))
    return rows


if __name__ == "__main__":
    main()
