"""`/dashboard/` for an organisation of 200 guilds and 1,000 agents (two runs each, a schedule and a dead letter per
guild): the server's time per page (its Server-Timing header) and the whole request's, as a signed-in admin, over
real HTTP from this process to a live server. Embedded, then production when PostgreSQL and Redis answer here."""

from __future__ import annotations

import argparse
import http.client
import json
import re
import time
from typing import Any
from urllib.parse import urlsplit

from bench.socket_bench import RESULTS, add_service_arguments, in_both_modes, percentile
from tests.support.live_server import LiveServer

ORG = "bench"


def run_mode(name: str, env: dict[str, str], args: argparse.Namespace, workers: int = 1) -> list[dict[str, Any]]:
    # The fleet is rows (its specs name no agents): relaunching its 200 guilds at start would only add 200 idle
    # managers' heartbeats to the two cores the page is measured on.
    server = LiveServer(env={"AUTH_DISABLED": "0", "LOG_LEVEL": "WARNING", "GUILDSITE_RELAUNCH_ON_START": "0", **env},
                        worker_count=workers)
    server.migrate()
    # The fleet and a signed-in session, made in one process.
    session = server.manage("shell", "-c", "\n".join([
        "from django.test import Client",
        "from tests.support.fleet import make_fleet",
        f"make_fleet({ORG!r}, admin='boss', guilds={args.guilds}, agents_per_guild={args.agents_per_guild})",
        "from tests import factories",
        "client = Client()",
        "client.force_login(factories.user('boss'))",
        "from django.conf import settings",
        "print(client.cookies[settings.SESSION_COOKIE_NAME].value)"])).strip().splitlines()[-1]
    server.start()
    try:
        row = measure(server, session, args.pages)
    finally:
        server.stop()
    row.update(mode=name, guilds=args.guilds, agents=args.guilds * args.agents_per_guild)
    return [row]


def measure(server: LiveServer, session: str, pages: int) -> dict[str, Any]:
    address = urlsplit(server.base)
    connection = http.client.HTTPConnection(address.hostname, address.port, timeout=60)
    headers = {"Cookie": f"sessionid={session}"}
    server_ms: list[float] = []
    total_ms: list[float] = []
    size = 0
    for n in range(pages + 2):
        started = time.perf_counter()
        connection.request("GET", f"/dashboard/?org={ORG}", headers=headers)
        response = connection.getresponse()
        body = response.read()
        elapsed = (time.perf_counter() - started) * 1000
        if response.status != 200:
            raise RuntimeError(f"/dashboard/ answered {response.status}: {body[:300]!r}")
        if n < 2:
            continue  # warm-up: templates compiled, connections opened
        timing = re.search(r"dur=([0-9.]+)", response.getheader("Server-Timing", ""))
        server_ms.append(float(timing.group(1)) if timing else float("nan"))
        total_ms.append(elapsed)
        size = len(body)
    connection.close()
    rows = body.decode().count('class="agent-row"')
    return {"pages": pages, "agent_rows": rows, "kib": round(size / 1024),
            "server_p50_ms": round(percentile(server_ms, 50), 1), "server_p95_ms": round(percentile(server_ms, 95), 1),
            "request_p50_ms": round(percentile(total_ms, 50), 1), "request_p95_ms": round(percentile(total_ms, 95), 1)}


def main(argv: list[str] | None = None) -> list[dict[str, Any]]:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--guilds", type=int, default=200)
    parser.add_argument("--agents-per-guild", type=int, default=5)
    parser.add_argument("--pages", type=int, default=30)
    add_service_arguments(parser)
    rows = in_both_modes(run_mode, parser.parse_args(argv))
    print(f"\n{'mode':<11}{'guilds':>7}{'agents':>7}{'KiB':>6}{'server p50':>11}{'p95':>7}{'request p50':>12}{'p95':>7}")
    for row in rows:
        print(f"{row['mode']:<11}{row['guilds']:>7}{row['agents']:>7}{row['kib']:>6}{row['server_p50_ms']:>11}"
              f"{row['server_p95_ms']:>7}{row['request_p50_ms']:>12}{row['request_p95_ms']:>7}")
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "dashboard.json").write_text(json.dumps(rows, indent=2))
    return rows


if __name__ == "__main__":
    main()
