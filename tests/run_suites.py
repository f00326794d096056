"""`make test`: lint, the suite on the embedded defaults, then again on PostgreSQL + Redis.

The services pass runs when both services answer on 127.0.0.1; otherwise it is
reported as skipped, or, with REQUIRE_SERVICES=1 (CI), the run fails.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
VENV_BIN = Path(sys.executable).parent
PG_URL = os.environ.get("GUILDSITE_TEST_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/test")
REDIS_URL = os.environ.get("GUILDSITE_TEST_REDIS_URL", "redis://127.0.0.1:6379/15")
REQUIRE_SERVICES = os.environ.get("REQUIRE_SERVICES", "") not in {"", "0", "false", "no"}


def answers(host: str, port: int, probe: bytes | None = None, expect: bytes | None = None) -> bool:
    try:
        with socket.create_connection((host, port), timeout=2) as conn:
            if probe is None:
                return True
            conn.sendall(probe)
            return conn.recv(64).startswith(expect or b"")
    except OSError:
        return False


def run(label: str, args: list[str], env: dict[str, str]) -> int:
    print(f"\n=== {label} ===", flush=True)
    return subprocess.call(args, cwd=ROOT, env=env)


def base_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in {"DATABASE_URL", "REDIS_URL", "GUILDSITE_EXECUTION_ENGINE"}}
    env["GUILDSITE_VAR_DIR"] = str(ROOT / "var" / "test")
    env.setdefault("DEBUG", "1")
    # Throttle counters and socket counts in a shared Redis: this run's own.
    env.setdefault("GUILDSITE_CACHE_PREFIX", f"guildsite-test-{os.getpid()}")
    env.setdefault("GUILDSITE_DIAGNOSTIC_AGENTS", "1")  # the tests drive guilds with ProbeAgent
    return env


def main() -> int:
    failures: list[str] = []
    pytest = [str(VENV_BIN / "python"), "-m", "pytest", *sys.argv[1:]]

    if run("ruff", [str(VENV_BIN / "ruff"), "check", "."], base_env()) != 0:
        failures.append("ruff")

    embedded = base_env()
    if run("pytest: embedded defaults (SQLite, in-memory messaging, in-process agents)",
           [*pytest, "-m", "not services"], embedded) != 0:
        failures.append("embedded suite")

    pg_up = answers("127.0.0.1", 5432)
    redis_up = answers("127.0.0.1", 6379, b"PING\r\n", b"+PONG")
    if pg_up and redis_up:
        services = base_env()
        services.update(DATABASE_URL=PG_URL, REDIS_URL=REDIS_URL, GUILDSITE_TEST_SERVICES="1")
        if run("pytest: PostgreSQL + Redis", pytest, services) != 0:
            failures.append("services suite")
    else:
        missing = [name for name, up in (("PostgreSQL 127.0.0.1:5432", pg_up), ("Redis 127.0.0.1:6379", redis_up)) if not up]
        message = f"SKIPPED the PostgreSQL + Redis pass: {', '.join(missing)} not answering"
        print(f"\n{message}", flush=True)
        if REQUIRE_SERVICES:
            failures.append("services unavailable with REQUIRE_SERVICES=1")

    if failures:
        print(f"\nmake test FAILED: {', '.join(failures)}", flush=True)
        return 1
    print("\nmake test passed", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
