"""Through an external agent: 20 users chat with a guild whose only agent is the SDK's echo example, running in a
process of its own and connected over /ws/agents/; then commands sent over REST to the SDK's command example, one
after another, each timed from the POST to the moment GET /api/commands/{id} shows its result.

Prints echoes per second through the external agent with their latency (p50, p99) and losses, and the command
round trip (p50, p99). Embedded, then production when PostgreSQL and Redis answer here. The load generator is this
process; the agents and the site run in others.
"""

from __future__ import annotations

import argparse
import asyncio
import http.client
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from bench.socket_bench import RESULTS, User, add_service_arguments, in_both_modes, percentile
from tests.support.live_server import LiveServer

EXAMPLES = Path(__file__).resolve().parents[1] / "sdk" / "python" / "examples"
HEADERS = {"X-User-Id": "bench"}


def register(server: LiveServer, name: str) -> tuple[str, str]:
    status, made = server.request("POST", "/api/external-agents", {"organization_id": "bench", "name": name},
                                  headers=HEADERS)
    assert status == 201, made
    return made["id"], made["key"]


def start_agent(server: LiveServer, key: str, example: str) -> subprocess.Popen:
    env = {**os.environ, "GUILDSITE_URL": f"{server.ws_base}/ws/agents/", "GUILDSITE_AGENT_KEY": key}
    return subprocess.Popen([sys.executable, str(EXAMPLES / example)], env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)


def launch_seating(server: LiveServer, registration_id: str) -> str:
    spec = {"name": "BenchExternal", "agents": [{"id": "helper", "name": "Helper",
                                                  "class_name": "guilds.agents.external.ExternalAgent",
                                                  "properties": {"registration_id": registration_id}}]}
    status, blueprint = server.request("POST", "/catalog/blueprints/", {
        "name": "BenchExternal", "author_id": "bench", "organization_id": "bench", "spec": spec}, headers=HEADERS)
    assert status == 201, blueprint
    status, guild = server.request("POST", f"/catalog/blueprints/{blueprint['id']}/guilds",
                                   {"guild_name": "bench", "user_id": "bench", "org_id": "bench"}, headers=HEADERS)
    assert status == 201, guild
    return guild["id"]


def wait_running(server: LiveServer, guild_id: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while server.request("GET", f"/api/guilds/{guild_id}", headers=HEADERS)[1]["status"] != "RUNNING":
        if time.monotonic() > deadline:
            raise RuntimeError("the guild did not reach RUNNING: is the external agent connected?")
        time.sleep(0.01)


async def chat(server: LiveServer, guild_id: str, users: int, seconds: float, max_messages: int) -> dict[str, Any]:
    crowd = [User(server, guild_id, i, answer_prefix="external echo: ") for i in range(users)]
    await asyncio.gather(*(u.connect() for u in crowd))
    for user in crowd:  # warm up
        await user.run(time.perf_counter() + 1, 3)
        user.latencies.clear()
        user.sent = user.received = 0
    started = time.perf_counter()
    await asyncio.gather(*(u.run(started + seconds, max_messages) for u in crowd))
    elapsed = time.perf_counter() - started
    latencies = [lat for u in crowd for lat in u.latencies]
    await asyncio.gather(*(u.close() for u in crowd))
    sent, received = sum(u.sent for u in crowd), sum(u.received for u in crowd)
    return {"users": users, "sent": sent, "echoed": received, "lost": sent - received,
            "echoes_per_s": round(received / elapsed, 1), "p50_ms": round(percentile(latencies, 50), 2),
            "p99_ms": round(percentile(latencies, 99), 2)}


def command_round_trips(server: LiveServer, agent_id: str, count: int) -> dict[str, Any]:
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)

    def call(method: str, path: str, body: dict | None = None) -> dict:
        connection.request(method, path, body=json.dumps(body) if body is not None else None,
                           headers={**HEADERS, "Content-Type": "application/json"})
        return json.loads(connection.getresponse().read())

    timings, failed = [], 0
    for number in range(count + 5):
        started = time.perf_counter()
        command = call("POST", f"/api/external-agents/{agent_id}/commands", {"type": "run", "content": f"echo {number}"})
        while command["state"] not in ("succeeded", "failed", "expired"):
            command = call("GET", f"/api/commands/{command['id']}")
        if number >= 5:  # the first few warm up
            timings.append((time.perf_counter() - started) * 1000)
            failed += command["state"] != "succeeded"
    connection.close()
    return {"commands": count, "failed": failed, "command_p50_ms": round(percentile(timings, 50), 2),
            "command_p99_ms": round(percentile(timings, 99), 2)}


def run_mode(name: str, env: dict[str, str], args: argparse.Namespace, workers: int = 1) -> list[dict[str, Any]]:
    server = LiveServer(env={"GUILDSITE_WS_RATE_PER_SECOND": "100000", "GUILDSITE_WS_RATE_BURST": "100000",
                             "GUILDSITE_WS_HISTORY_ON_CONNECT": "0", "LOG_LEVEL": "WARNING", **env},
                        worker_count=workers)
    server.migrate()
    server.start()
    agents: list[subprocess.Popen] = []
    try:
        echo_id, echo_key = register(server, "echo")
        runner_id, runner_key = register(server, "runner")
        guild_id = launch_seating(server, echo_id)
        agents = [start_agent(server, echo_key, "echo_agent.py"), start_agent(server, runner_key, "command_agent.py")]
        wait_running(server, guild_id)
        row = asyncio.run(chat(server, guild_id, args.users, args.seconds, args.max_messages))
        row.update(command_round_trips(server, runner_id, args.commands))
    finally:
        for agent in agents:
            agent.terminate()
            agent.wait(10)
        server.stop()
    row["mode"] = name
    return [row]


def main(argv: list[str] | None = None) -> list[dict[str, Any]]:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--users", type=int, default=20)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--max-messages", type=int, default=100_000)
    parser.add_argument("--commands", type=int, default=200)
    add_service_arguments(parser)
    rows = in_both_modes(run_mode, parser.parse_args(argv))
    print(f"\n{'mode':<11}{'users':>6}{'echoes/s':>10}{'p50 ms':>8}{'p99 ms':>8}{'lost':>6}{'commands':>10}"
          f"{'cmd p50 ms':>12}{'cmd p99 ms':>12}")
    for row in rows:
        print(f"{row['mode']:<11}{row['users']:>6}{row['echoes_per_s']:>10}{row['p50_ms']:>8}{row['p99_ms']:>8}"
              f"{row['lost']:>6}{row['commands']:>10}{row['command_p50_ms']:>12}{row['command_p99_ms']:>12}")
        if row["failed"]:
            print(f"  {row['mode']}: {row['failed']} commands did not succeed")
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "external.json").write_text(json.dumps(rows, indent=2))
    return rows


if __name__ == "__main__":
    main()
