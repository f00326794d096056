"""A real guildsite server in a subprocess (daphne on a free port), for end-to-end tests and the bench."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class LiveServer:
    def __init__(self, *, env: dict[str, str] | None = None, var_dir: str | None = None, worker_count: int = 1) -> None:
        self.port = free_port()
        self.var_dir = var_dir or tempfile.mkdtemp(prefix="guildsite-live-")
        self.env = {**os.environ, "GUILDSITE_VAR_DIR": self.var_dir, "DEBUG": "1", "PORT": str(self.port),
                    "PYTHONUNBUFFERED": "1", "GUILDSITE_CELERY_QUEUE": f"guildsite-live-{self.port}",
                    # Throttle counters and socket counts of this server only, where servers share a Redis.
                    "GUILDSITE_CACHE_PREFIX": f"guildsite-live-{self.port}", "GUILDSITE_DIAGNOSTIC_AGENTS": "1",
                    # gRPC only where a test asks for it (a port of its own): servers side by side would share 50051.
                    "GRPC_PORT": "0",
                    **(env or {})}
        self.process: subprocess.Popen | None = None
        self.log_path = Path(self.var_dir) / "server.log"
        self.workers = None
        if self.env.get("REDIS_URL") and self.env.get("GUILDSITE_EXECUTION_ENGINE", "celery") == "celery":
            # Production mode: the site runs agents in Celery workers, so a live server comes with them.
            from tests.support.workers import CeleryWorkers

            self.workers = CeleryWorkers(self.env, count=worker_count, log_dir=self.var_dir)

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws_base(self) -> str:
        return f"ws://127.0.0.1:{self.port}"

    def migrate(self, *, flush: bool = True) -> None:
        """Migrate the server's database and (by default) empty it, so no earlier run's guilds relaunch."""
        for command in (["migrate", "--noinput"], ["flush", "--noinput"] if flush else None):
            if command:
                subprocess.run([sys.executable, "manage.py", *command], cwd=ROOT, env=self.env, check=True,
                               stdout=subprocess.DEVNULL)

    def manage(self, *args: str, stdin: str | None = None) -> str:
        """Run a management command against the server's database; its standard output."""
        done = subprocess.run([sys.executable, "manage.py", *args], cwd=ROOT, env=self.env, check=True, text=True,
                              input=stdin, capture_output=True)
        return done.stdout

    def start(self, timeout: float = 30) -> LiveServer:
        if self.workers is not None and not self.workers.processes:
            self.workers.start()
        log = self.log_path.open("ab")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "guildsite.serve", "-b", "127.0.0.1", "-p", str(self.port), "guildsite.asgi:application"],
            cwd=ROOT, env=self.env, stdout=log, stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"server exited early:\n{self.log()}")
            try:
                with urllib.request.urlopen(f"{self.base}/api/schema/", timeout=1):
                    return self
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                time.sleep(0.1)
        raise RuntimeError(f"server did not answer within {timeout}s:\n{self.log()}")

    def stop(self, *, kill: bool = False, workers: bool = True) -> None:
        if self.process and self.process.poll() is None:
            if kill:
                self.process.kill()
            else:
                self.process.terminate()
            self.process.wait(10)
        if workers and self.workers is not None:
            self.workers.stop()

    def log(self) -> str:
        text = self.log_path.read_text(errors="replace")[-5000:] if self.log_path.exists() else ""
        return text + ("\n--- workers ---\n" + self.workers.log() if self.workers is not None else "")

    def request(self, method: str, path: str, body: Any = None, headers: dict[str, str] | None = None,
                raw: bytes | None = None) -> tuple[int, Any]:
        data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
        all_headers = {"Content-Type": "application/json", **(headers or {})} if data is not None else dict(headers or {})
        req = urllib.request.Request(f"{self.base}{path}", data=data, method=method, headers=all_headers)
        try:
            with urllib.request.urlopen(req, timeout=30) as response:
                text = response.read()
                status = response.status
        except urllib.error.HTTPError as err:
            text, status = err.read(), err.code
        try:
            return status, json.loads(text) if text else None
        except ValueError:
            return status, text

    def guild_reaches(self, guild_id: str, status: str, *, headers: dict[str, str], timeout: float = 30) -> dict:
        """The guild's REST detail once it shows `status` (read by whoever `headers` sign in)."""
        deadline = time.monotonic() + timeout
        guild: dict = {}
        while time.monotonic() < deadline:
            _, guild = self.request("GET", f"/api/guilds/{guild_id}", headers=headers)
            if guild.get("status") == status:
                return guild
            time.sleep(0.1)  # a poll interval, within the deadline
        raise AssertionError(f"guild {guild_id} is {guild.get('status')}, not {status}: {guild.get('status_detail')}")


def service_env() -> dict[str, str]:
    """In the services pass the server uses PostgreSQL's own database and the test Redis."""
    env: dict[str, str] = {}
    if os.environ.get("GUILDSITE_TEST_SERVICES"):
        env["DATABASE_URL"] = os.environ.get("GUILDSITE_E2E_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/test")
        env["REDIS_URL"] = os.environ["REDIS_URL"]
    return env
