"""Echo flow over real WebSockets against a real server: N users in one guild, closed loop.

Prints launch→RUNNING, round-trip p50/p90/p99, echoes per second and lost messages, and
writes JSON. Loopback only; every loop is bounded in count and time.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import resource
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import websockets

from tests.support.live_server import LiveServer

REPORT = "rustic_ai.core.guild.agent_ext.mixins.health.AgentsHealthReport"
RESULTS = Path(__file__).resolve().parent / "results"


def percentile(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


ECHO_AGENT = {"name": "EchoAgent", "class_name": "rustic_ai.core.agents.testutils.echo_agent.EchoAgent",
              "additional_topics": ["echo_topic"], "listen_to_default_topic": False}


async def launch_guild(server: LiveServer, agent: dict[str, Any] = ECHO_AGENT) -> tuple[str, float]:
    """A guild of `agent` (the echo agent unless said otherwise), RUNNING: (its id, launch to RUNNING in ms)."""
    name = f"Bench{agent['name']}"
    status, blueprint = server.request("POST", "/catalog/blueprints/", {
        "name": name, "author_id": "bench", "spec": {"name": name, "agents": [agent]}})
    assert status == 201, blueprint
    started = time.perf_counter()
    status, guild = server.request("POST", f"/catalog/blueprints/{blueprint['id']}/guilds",
                                   {"guild_name": "bench", "user_id": "bench", "org_id": "bench"})
    while server.request("GET", f"/api/guilds/{guild['id']}")[1]["status"] != "RUNNING":
        if time.perf_counter() - started > 30:
            raise RuntimeError("guild did not reach RUNNING in 30 s")
        await asyncio.sleep(0.002)
    return guild["id"], (time.perf_counter() - started) * 1000


class User:
    def __init__(self, server: LiveServer, guild_id: str, index: int, answer_prefix: str = "Echo: ") -> None:
        self.server, self.guild_id, self.user_id = server, guild_id, f"bench{index}"
        self.answer_prefix = answer_prefix  # what the answering agent puts before the text it got
        self.latencies: list[float] = []
        self.sent = 0
        self.received = 0

    async def connect(self) -> None:
        base = f"{self.server.ws_base}/ws/guilds/{self.guild_id}"
        self.system = await websockets.connect(f"{base}/syscomms/{self.user_id}", max_size=None)
        self.user = await websockets.connect(f"{base}/usercomms/{self.user_id}/{self.user_id}", max_size=None)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            frame = json.loads(await asyncio.wait_for(self.system.recv(), 20))
            if frame["format"] == REPORT and frame["payload"]["guild_health"] == "ok":
                return
        raise RuntimeError("user never saw guild_health ok")

    async def run(self, until: float, max_messages: int) -> None:
        while time.perf_counter() < until and self.sent < max_messages:
            tag = f"{self.user_id}-{self.sent}"
            self.sent += 1
            started = time.perf_counter()
            await self.user.send(json.dumps({"id": tag, "format": "text", "payload": {"text": tag}}))
            try:
                while True:
                    frame = json.loads(await asyncio.wait_for(self.user.recv(), 5))
                    if frame["payload"].get("text") == f"{self.answer_prefix}{tag}":
                        self.latencies.append((time.perf_counter() - started) * 1000)
                        self.received += 1
                        break
            except TimeoutError:
                continue  # counted as lost

    async def close(self) -> None:
        await self.user.close()
        await self.system.close()


async def drive(server: LiveServer, users: int, seconds: float, max_messages: int) -> dict[str, Any]:
    guild_id, launch_ms = await launch_guild(server)
    crowd = [User(server, guild_id, i) for i in range(users)]
    await asyncio.gather(*(u.connect() for u in crowd))
    for user in crowd:  # warm up
        await user.run(time.perf_counter() + 1, 3)
        user.latencies.clear()
        user.sent = user.received = 0
    started, client_cpu = time.perf_counter(), time.process_time()
    await asyncio.gather(*(u.run(started + seconds, max_messages) for u in crowd))
    elapsed, client_cpu = time.perf_counter() - started, time.process_time() - client_cpu
    latencies = [lat for u in crowd for lat in u.latencies]
    await asyncio.gather(*(u.close() for u in crowd))
    sent = sum(u.sent for u in crowd)
    received = sum(u.received for u in crowd)
    return {"users": users, "launch_to_running_ms": round(launch_ms, 1), "sent": sent, "echoed": received,
            "lost": sent - received, "echoes_per_s": round(received / elapsed, 1),
            "p50_ms": round(percentile(latencies, 50), 2), "p90_ms": round(percentile(latencies, 90), 2),
            "p99_ms": round(percentile(latencies, 99), 2),
            # This process's own CPU per echo: the machine's speed at the time (its code never changes), so
            # runs on a machine whose speed drifts can be compared (echoes per second times this is nearly constant).
            "client_us_per_echo": round(client_cpu / received * 1e6) if received else None}


def services_answer() -> bool:
    import socket

    try:
        for port in (5432, 6379):
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
        return True
    except OSError:
        return False


def raise_open_files(limit: int = 8192) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < limit:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(limit, hard), hard))


def run_mode(name: str, env: dict[str, str], args: argparse.Namespace, workers: int = 1) -> list[dict[str, Any]]:
    server = LiveServer(env={"GUILDSITE_WS_RATE_PER_SECOND": "100000", "GUILDSITE_WS_RATE_BURST": "100000",
                             "GUILDSITE_WS_HISTORY_ON_CONNECT": "0", "LOG_LEVEL": "WARNING", **env},
                        worker_count=workers)
    server.migrate()
    server.start()
    rows = []
    try:
        for users in args.users:
            row = asyncio.run(drive(server, users, args.seconds, args.max_messages))
            row["mode"] = name
            rows.append(row)
    finally:
        server.stop()
    return rows


def add_service_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--database-url", default="postgres://postgres@127.0.0.1:5432/test",
                        help="production mode's database (emptied first)")
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/11", help="production mode's Redis")


def in_both_modes(run: Callable[..., list[dict[str, Any]]], args: argparse.Namespace) -> list[dict[str, Any]]:
    """`run(mode, env, args, workers=…)` embedded, then in production (2 Celery workers) when PostgreSQL and
    Redis answer here."""
    raise_open_files()
    rows = run("embedded", {"REDIS_URL": "", "DATABASE_URL": ""}, args)
    if services_answer():
        rows += run("production", {"DATABASE_URL": args.database_url, "REDIS_URL": args.redis_url,
                                   "GUILDSITE_EXECUTION_ENGINE": "celery"}, args, workers=2)
    else:
        print("production mode skipped: PostgreSQL and Redis do not both answer on 127.0.0.1")
    return rows


def main(argv: list[str] | None = None) -> list[dict[str, Any]]:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--users", type=int, nargs="+", default=[1, 20])
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--max-messages", type=int, default=5000, help="per user, a bound on the loop")
    add_service_arguments(parser)
    rows = in_both_modes(run_mode, parser.parse_args(argv))
    print(f"\n{'mode':<10}{'users':>6}{'launch ms':>11}{'echo/s':>9}{'p50 ms':>9}{'p90 ms':>9}{'p99 ms':>9}{'lost':>6}"
          f"{'client us/echo':>16}")
    for row in rows:
        print(f"{row['mode']:<10}{row['users']:>6}{row['launch_to_running_ms']:>11}{row['echoes_per_s']:>9}"
              f"{row['p50_ms']:>9}{row['p90_ms']:>9}{row['p99_ms']:>9}{row['lost']:>6}{row['client_us_per_echo']:>16}")
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "sockets.json").write_text(json.dumps(rows, indent=2))
    return rows


if __name__ == "__main__":
    main()
