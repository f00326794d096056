"""Production mode (daphne + a Celery worker + PostgreSQL + Redis): a restarted daphne, and a
restarted Redis, lose no accepted message, and the user gets each reply exactly once."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable
from urllib.parse import quote

import pytest
import redis
from websockets.sync.client import connect

from tests.e2e.test_seed_flow import receive_until
from tests.support.live_server import LiveServer, free_port, service_env

pytestmark = pytest.mark.services
ECHO = "rustic_ai.core.agents.testutils.echo_agent.EchoAgent"
DRAIN_WAITS = "waits for Redis"  # guilds.engines.celery.drain: a drain met the outage and goes on after it


def launch(server: LiveServer, agent_class: str) -> str:
    status, blueprint = server.request("POST", "/catalog/blueprints/", {
        "name": "Faults", "author_id": "a", "spec": {"name": "Faults", "agents": [
            {"name": "Agent", "class_name": agent_class}]}})
    assert status == 201, blueprint
    status, guild = server.request("POST", f"/catalog/blueprints/{blueprint['id']}/guilds",
                                   {"guild_name": "Faults", "user_id": "u1", "org_id": "testorg456"})
    deadline = time.monotonic() + 30
    while server.request("GET", f"/api/guilds/{guild['id']}")[1]["status"] != "RUNNING":
        assert time.monotonic() < deadline, server.log()
        time.sleep(0.1)
    return guild["id"]


def user_socket(server: LiveServer, guild_id: str, last_seen: str | None = None):
    query = f"?last_seen_id={last_seen}" if last_seen else ""
    return connect(f"{server.ws_base}/ws/guilds/{guild_id}/usercomms/u1/{quote('Una')}{query}", open_timeout=15)


def frames_until_quiet(ws, quiet: float = 1.5) -> list[dict]:
    frames = []
    while True:
        try:
            frames.append(json.loads(ws.recv(timeout=quiet)))
        except TimeoutError:
            return frames


def keep_the_probe_busy(ws) -> dict:
    """One message answered ("count: 1"), then one the probe takes 2 s over: its acceptance frame."""
    ws.send(json.dumps({"id": "first", "format": "text", "payload": {"text": "first"}}))
    receive_until(ws, lambda f: f["payload"].get("text") == "count: 1", timeout=15)
    ws.send(json.dumps({"id": "slow", "format": "text", "payload": {"text": "slow: 2"}}))
    return receive_until(ws, lambda f: f.get("client_message_id") == "slow", timeout=15)


def test_a_daphne_restart_loses_nothing_and_the_user_resumes_exactly_once():
    env = {"GUILDSITE_HEARTBEAT_INTERVAL": "0.5", **service_env(),
           "GUILDSITE_CELERY_QUEUE": f"guildsite-daphne-{os.getpid()}"}
    first = LiveServer(env=env)
    first.migrate()
    first.start()
    second = None
    try:
        guild_id = launch(first, "guilds.agents.probe.ProbeAgent")
        with user_socket(first, guild_id) as ws:
            mine = keep_the_probe_busy(ws)
            first.stop(kill=True, workers=False)  # daphne dies while the agent is still working on it
        second = LiveServer(env=env, var_dir=first.var_dir)
        second.port, second.workers = first.port, first.workers
        second.start()
        with user_socket(second, guild_id, last_seen=mine["id"]) as ws:
            missed = frames_until_quiet(ws, quiet=4)
            assert [f["payload"]["text"] for f in missed] == ["count: 2"]  # exactly once, nothing else replayed
            ws.send(json.dumps({"format": "text", "payload": {"text": "third"}}))
            receive_until(ws, lambda f: f["payload"].get("text") == "count: 3", timeout=15)
    finally:
        (second or first).stop()


@pytest.fixture
def own_redis():
    """A Redis of the test's own, with the persistence the README recommends, on a free port."""
    port, workdir = free_port(), tempfile.mkdtemp(prefix="guildsite-redis-")
    args = ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--dir", workdir, "--appendonly", "yes",
            "--appendfsync", "everysec", "--save", ""]

    def start() -> subprocess.Popen:
        process = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        client = redis.Redis(port=port)
        for _ in range(100):
            try:
                client.ping()
                return process
            except redis.ConnectionError:
                time.sleep(0.05)
        raise RuntimeError("own Redis did not start")

    state = {"process": start()}

    def restart(down_until: Callable[[], bool] = lambda: True) -> None:
        redis.Redis(port=port).shutdown(save=False)  # with appendonly, the log is flushed first
        state["process"].wait(10)
        deadline = time.monotonic() + 30
        while not down_until():
            assert time.monotonic() < deadline, "the outage was never noticed"
            time.sleep(0.1)
        state["process"] = start()

    yield port, restart
    if state["process"].poll() is None:
        state["process"].terminate()
        state["process"].wait(10)
    shutil.rmtree(workdir, ignore_errors=True)


def test_a_redis_restart_loses_no_accepted_message(own_redis):
    port, restart = own_redis
    env = {"GUILDSITE_HEARTBEAT_INTERVAL": "0.5", **service_env(), "REDIS_URL": f"redis://127.0.0.1:{port}/0",
           "GUILDSITE_CELERY_QUEUE": "guildsite"}
    server = LiveServer(env=env)
    server.migrate()
    server.start()
    try:
        guild_id = launch(server, "guilds.agents.probe.ProbeAgent")
        with user_socket(server, guild_id) as ws:
            accepted = [keep_the_probe_busy(ws)["id"]]
            # Down while the agent, in a worker, is still busy with it, and until its reply met the outage.
            restart(down_until=lambda: DRAIN_WAITS in server.workers.log(tail=None))
            seen: list[dict] = []
            deadline = time.monotonic() + 60  # the workers' broker connection comes back with Celery's back-off
            for text in ("after 1", "after 2"):
                while True:  # a frame sent while Redis is still away is refused with an error: send it again
                    ws.send(json.dumps({"id": text, "format": "text", "payload": {"text": text}}))
                    frame = receive_until(ws, lambda f, text=text: f.get("client_message_id") == text, timeout=45,
                                          seen=seen)
                    if frame["format"] == "text":
                        accepted.append(frame["id"])
                        break
                    assert time.monotonic() < deadline, frame
                    time.sleep(0.3)
            frames = seen + frames_until_quiet(ws, quiet=8)
        replies = [f["in_response_to"] for f in frames if f["payload"].get("text", "").startswith("count:")]
        assert sorted(replies) == sorted(accepted)  # each accepted message answered, exactly once
    finally:
        server.stop()
