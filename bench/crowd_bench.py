"""A thousand idle users in one guild (issue 13), measured from outside: this process is the load generator,
the site runs as its Procfile says (production: web, worker, beat over PostgreSQL and Redis) or as `make run`
does (embedded: the web process alone).

Prints, per mode: sockets opened, RSS summed over every process of the site 60 s after the last one opened,
a new user's first echo and echo p50/p99 under that load, whether idle sockets' own messages come back, the
guild's status throughout, RSS after the sockets close, and the time until a restarted process set answers.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import websockets

from bench.socket_bench import RESULTS, percentile, raise_open_files, services_answer

ROOT = Path(__file__).resolve().parents[1]
REPORT = "rustic_ai.core.guild.agent_ext.mixins.health.AgentsHealthReport"
ECHO_CLASS = "rustic_ai.core.agents.testutils.echo_agent.EchoAgent"


def procfile_commands() -> dict[str, str]:
    lines = (ROOT / "Procfile").read_text().splitlines()
    return dict(line.split(": ", 1) for line in lines if line.strip() and not line.startswith("#"))


def rss_mb(pid: int) -> float:
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return 0.0
    line = next((entry for entry in status.splitlines() if entry.startswith("VmRSS")), "VmRSS: 0 kB")
    return int(line.split()[1]) / 1024


def descendants(pid: int) -> list[int]:
    """pid and every process under it (Celery's pool, the shell the Procfile line runs in)."""
    found, frontier = [pid], [pid]
    while frontier:
        parent = frontier.pop()
        path = Path(f"/proc/{parent}/task/{parent}/children")
        try:
            children = [int(child) for child in path.read_text().split()]
        except OSError:
            children = []
        found += children
        frontier += children
    return found


class ProcessSet:
    """The site's processes, started from the Procfile lines the mode needs, each in its own session."""

    def __init__(self, mode: str, env: dict[str, str], var_dir: str, port: int) -> None:
        self.mode = mode
        self.roles = ["web", "worker", "webhooks", "beat"] if mode == "production" else ["web"]
        self.env = env
        self.var_dir = Path(var_dir)
        self.port = port
        self.processes: dict[str, subprocess.Popen] = {}

    def start(self) -> None:
        commands = procfile_commands()
        for role in self.roles:
            command = commands[role]
            if self.mode == "embedded":  # `make run`'s server: the same web command on the embedded defaults
                command = command.replace("-b 0.0.0.0", "-b 127.0.0.1")
            log = (self.var_dir / f"{role}.log").open("ab")
            self.processes[role] = subprocess.Popen(["sh", "-c", command], cwd=ROOT, env=self.env,
                                                    stdout=log, stderr=subprocess.STDOUT, start_new_session=True)

    def release(self) -> None:
        command = procfile_commands()["release"]
        subprocess.run(["sh", "-c", command], cwd=ROOT, env=self.env, check=True, stdout=subprocess.DEVNULL)

    def rss(self) -> dict[str, float]:
        return {role: round(sum(rss_mb(pid) for pid in descendants(process.pid)), 1)
                for role, process in self.processes.items()}

    def worker_ready(self) -> bool:
        log = self.var_dir / "worker.log"
        return "worker" not in self.processes or (log.exists() and b" ready." in log.read_bytes())

    def stop(self) -> None:
        for process in self.processes.values():
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
        for process in self.processes.values():
            try:
                process.wait(15)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait(5)
        self.processes.clear()
        worker_log = self.var_dir / "worker.log"
        if worker_log.exists():  # the next start's "ready" is its own
            worker_log.rename(self.var_dir / f"worker-{time.time_ns()}.log")

    def logs(self) -> str:
        return "\n".join(f"--- {path.name}\n{path.read_text(errors='replace')[-3000:]}"
                         for path in sorted(self.var_dir.glob("*.log")))


class Site:
    def __init__(self, port: int) -> None:
        self.base = f"http://127.0.0.1:{port}"
        self.ws_base = f"ws://127.0.0.1:{port}"

    def request(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(f"{self.base}{path}", data=data, method=method,
                                     headers={"Content-Type": "application/json"} if data else {})
        try:
            with urllib.request.urlopen(req, timeout=10) as response:
                status, text = response.status, response.read()
        except urllib.error.HTTPError as err:
            return err.code, err.read()
        try:
            return status, json.loads(text or b"null")
        except ValueError:
            return status, text

    async def wait_answering(self, seconds: float) -> None:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            try:
                await asyncio.to_thread(self.request, "GET", "/api/schema/")
                return
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                await asyncio.sleep(0.05)  # polling for the port to open
        raise RuntimeError(f"the site did not answer within {seconds} s")

    def guild_status(self, guild_id: str) -> str:
        status, body = self.request("GET", f"/api/guilds/{guild_id}")
        return body["status"] if status == 200 else f"HTTP {status}"

    async def launch(self) -> str:
        status, blueprint = self.request("POST", "/catalog/blueprints/", {
            "name": "CrowdEcho", "author_id": "bench", "spec": {"name": "CrowdEcho", "agents": [
                {"name": "EchoAgent", "class_name": ECHO_CLASS, "additional_topics": ["echo_topic"],
                 "listen_to_default_topic": False}]}})
        assert status == 201, blueprint
        status, guild = self.request("POST", f"/catalog/blueprints/{blueprint['id']}/guilds",
                                     {"guild_name": "crowd", "user_id": "bench", "org_id": "bench"})
        assert status == 201, guild
        deadline = time.monotonic() + 60
        while self.guild_status(guild["id"]) != "RUNNING":
            if time.monotonic() > deadline:
                raise RuntimeError("the guild did not reach RUNNING within 60 s")
            await asyncio.sleep(0.05)  # polling the REST status
        return guild["id"]


async def seed_user(site: Site, guild_id: str, user_id: str) -> tuple[Any, Any]:
    """A seed 000 client: system socket; the user socket after the first health report; ready at "ok"."""
    base = f"{site.ws_base}/ws/guilds/{guild_id}"
    system = await websockets.connect(f"{base}/syscomms/{user_id}", max_size=None)
    user = None
    async with asyncio.timeout(20):
        while True:
            frame = json.loads(await system.recv())
            if frame["format"] != REPORT:
                continue
            if user is None:
                user = await websockets.connect(f"{base}/usercomms/{user_id}/{user_id}", max_size=None)
            if frame["payload"]["guild_health"] == "ok":
                return system, user


async def echo(user: Any, tag: str, timeout: float = 10) -> float:
    """ms until this socket hears its own message echoed."""
    started = time.perf_counter()
    await user.send(json.dumps({"id": tag, "format": "text", "payload": {"text": tag}}))
    async with asyncio.timeout(timeout):
        while True:
            frame = json.loads(await user.recv())
            if frame.get("payload", {}).get("text") == f"Echo: {tag}":
                return (time.perf_counter() - started) * 1000
            if frame.get("is_error_message"):
                raise RuntimeError(f"error frame instead of an echo: {frame['payload']}")


async def first_echo(site: Site, guild_id: str, user_id: str, timeout: float) -> tuple[float, Any, Any]:
    """ms from a new user's first connect to the echo of its first message."""
    started = time.perf_counter()
    system, user = await seed_user(site, guild_id, user_id)
    await echo(user, f"{user_id}-first", timeout)
    return (time.perf_counter() - started) * 1000, system, user


async def open_idle(site: Site, guild_id: str, count: int, parallel: int) -> tuple[list[Any], list[str]]:
    sockets: list[Any] = []
    failures: list[str] = []
    gate = asyncio.Semaphore(parallel)

    async def one(index: int) -> None:
        async with gate:
            try:
                sockets.append(await websockets.connect(
                    f"{site.ws_base}/ws/guilds/{guild_id}/usercomms/idle{index}/idle{index}", max_size=None,
                    ping_interval=None, open_timeout=30))
            except (OSError, TimeoutError, websockets.exceptions.WebSocketException) as exc:
                failures.append(f"idle{index}: {exc!r}")

    await asyncio.gather(*(one(index) for index in range(count)))
    return sockets, failures


async def watch_status(site: Site, guild_id: str, seen: set[str], stop: asyncio.Event) -> None:
    while not stop.is_set():
        try:
            seen.add(await asyncio.to_thread(site.guild_status, guild_id))
        except (urllib.error.URLError, ConnectionError, TimeoutError) as exc:
            seen.add(f"no answer: {exc}")
        try:
            await asyncio.wait_for(stop.wait(), 1.0)
        except TimeoutError:
            pass


async def crowd(processes: ProcessSet, site: Site, args: argparse.Namespace) -> dict[str, Any]:
    row: dict[str, Any] = {"mode": processes.mode, "asked": args.sockets}
    await site.wait_answering(60)
    while not processes.worker_ready():
        await asyncio.sleep(0.1)  # polling the worker's log for "ready"
    guild_id = await site.launch()
    _, system, user = await first_echo(site, guild_id, "warmup", 20)
    await system.close()
    await user.close()
    row["rss_start_mb"] = processes.rss()

    seen: set[str] = set()
    stop_watching = asyncio.Event()
    watcher = asyncio.ensure_future(watch_status(site, guild_id, seen, stop_watching))
    started = time.perf_counter()
    idle, failures = await open_idle(site, guild_id, args.sockets, args.parallel)
    row["opened"], row["open_s"], row["open_failures"] = len(idle), round(time.perf_counter() - started, 1), failures[:5]
    print(f"  {processes.mode}: {len(idle)} idle sockets open in {row['open_s']} s; settling {args.settle} s",
          flush=True)
    await asyncio.sleep(args.settle)  # the measurement is "RSS this long after the last socket", not a sync
    row["rss_loaded_mb"] = processes.rss()

    first_ms, system, user = await first_echo(site, guild_id, "newcomer", 15)
    latencies, lost = [], 0
    for n in range(args.echoes):
        try:
            latencies.append(await echo(user, f"newcomer-{n}", 5))
        except TimeoutError:
            lost += 1
    row["loaded_lost"] = lost
    row["new_user_first_echo_ms"] = round(first_ms, 1)
    row["loaded_p50_ms"] = round(percentile(latencies, 50), 2)
    row["loaded_p99_ms"] = round(percentile(latencies, 99), 2)
    await system.close()
    await user.close()
    picked = [idle[0], idle[len(idle) // 2], idle[-1]] if idle else []
    echoed = 0
    for index, socket in enumerate(picked):
        try:
            await echo(socket, f"idle-speaks-{index}", 10)
            echoed += 1
        except TimeoutError:
            pass
    row["idle_echoed"] = f"{echoed} of {len(picked)}"

    started = time.perf_counter()
    await asyncio.gather(*(socket.close() for socket in idle))
    row["close_s"] = round(time.perf_counter() - started, 1)
    await asyncio.sleep(args.after_close)  # as above: RSS this long after the sockets closed
    row["rss_closed_mb"] = processes.rss()
    # Given back, or at least not growing: the same thousand again, then closed again.
    again, _ = await open_idle(site, guild_id, args.sockets, args.parallel)
    await asyncio.gather(*(socket.close() for socket in again))
    await asyncio.sleep(args.after_close)
    row["rss_closed_again_mb"] = processes.rss()
    stop_watching.set()
    await watcher
    row["status_seen"] = sorted(seen)

    processes.stop()
    started = time.perf_counter()
    processes.start()
    await site.wait_answering(60)
    first_ms, system, user = await first_echo(site, guild_id, "after-restart", 60)
    row["restart_to_echo_s"] = round(time.perf_counter() - started, 2)
    await system.close()
    await user.close()
    return row


def mode_env(mode: str, args: argparse.Namespace, var_dir: str, port: int) -> dict[str, str]:
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ.get('PATH', '')}",
           "DEBUG": "1", "AUTH_DISABLED": "1", "PORT": str(port), "GUILDSITE_VAR_DIR": var_dir,
           "PYTHONUNBUFFERED": "1", "LOG_LEVEL": "WARNING", "GUILDSITE_CACHE_PREFIX": f"crowd-{port}",
           "GUILDSITE_CELERY_QUEUE": f"crowd-{port}", "GUILDSITE_WS_MAX_PER_USER": "10",
           # the newcomer's closed loop goes faster than a person types (socket_bench does the same)
           "GUILDSITE_WS_RATE_PER_SECOND": "100000", "GUILDSITE_WS_RATE_BURST": "100000"}
    if mode == "production":
        env.update({"DATABASE_URL": args.database_url, "REDIS_URL": args.redis_url,
                    "GUILDSITE_EXECUTION_ENGINE": "celery"})
    else:
        env.update({"DATABASE_URL": "", "REDIS_URL": ""})
    return env


def fresh_stores(args: argparse.Namespace) -> None:
    """A fresh database and Redis for production mode (the bench's own, named on the command line)."""
    import psycopg
    import redis

    name = args.database_url.rsplit("/", 1)[1]
    admin = args.database_url.rsplit("/", 1)[0] + "/postgres"
    with psycopg.connect(admin, autocommit=True) as connection:
        connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        connection.execute(f'CREATE DATABASE "{name}"')
    redis.Redis.from_url(args.redis_url).flushdb()


def run_mode(mode: str, args: argparse.Namespace) -> dict[str, Any]:
    from tests.support.live_server import free_port

    var_dir = tempfile.mkdtemp(prefix=f"guildsite-crowd-{mode}-")
    port = free_port()
    processes = ProcessSet(mode, mode_env(mode, args, var_dir, port), var_dir, port)
    if mode == "production":
        fresh_stores(args)
    processes.release()
    processes.start()
    try:
        return asyncio.run(crowd(processes, Site(port), args))
    except Exception:
        print(processes.logs())
        raise
    finally:
        processes.stop()


def total(rss: dict[str, float]) -> float:
    return round(sum(rss.values()), 1)


def main(argv: list[str] | None = None) -> list[dict[str, Any]]:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sockets", type=int, default=1000)
    parser.add_argument("--parallel", type=int, default=50, help="handshakes in flight at once")
    parser.add_argument("--settle", type=float, default=60.0, help="seconds after the last socket before RSS")
    parser.add_argument("--after-close", type=float, default=20.0, help="seconds after closing before RSS")
    parser.add_argument("--echoes", type=int, default=200, help="the new user's echoes for p50/p99")
    parser.add_argument("--modes", nargs="+", default=["embedded", "production"])
    parser.add_argument("--database-url", default="postgres://postgres@127.0.0.1:5432/guildsite_bench")
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/11")
    args = parser.parse_args(argv)
    raise_open_files(args.sockets * 3 + 1000)
    rows = []
    for mode in args.modes:
        if mode == "production" and not services_answer():
            print("production mode skipped: PostgreSQL and Redis do not both answer on 127.0.0.1")
            continue
        rows.append(run_mode(mode, args))
    for row in rows:
        print(f"\n{row['mode']}: {row['opened']} of {row['asked']} idle user sockets open in {row['open_s']} s "
              f"{'; failures: ' + '; '.join(row['open_failures']) if row['open_failures'] else ''}")
        print(f"  RSS of the site: {total(row['rss_start_mb'])} MB at start, {total(row['rss_loaded_mb'])} MB "
              f"{args.settle:g} s after the last socket (+{round(total(row['rss_loaded_mb']) - total(row['rss_start_mb']), 1)}"
              f" MB; {row['rss_loaded_mb']}), {total(row['rss_closed_mb'])} MB {args.after_close:g} s after closing "
              f"({row['rss_closed_mb']}), {total(row['rss_closed_again_mb'])} MB after opening and closing them all "
              f"again ({row['rss_closed_again_mb']})")
        print(f"  new user's first echo {row['new_user_first_echo_ms']} ms; echo p50 {row['loaded_p50_ms']} ms, "
              f"p99 {row['loaded_p99_ms']} ms under load ({row['loaded_lost']} of {args.echoes} not echoed within 5 s); "
              f"idle sockets' own messages echoed: {row['idle_echoed']}")
        print(f"  guild status seen throughout: {', '.join(row['status_seen'])}; restarted process set "
              f"echoed after {row['restart_to_echo_s']} s")
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "crowd.json").write_text(json.dumps(rows, indent=2))
    return rows


if __name__ == "__main__":
    main()
