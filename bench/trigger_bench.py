"""Signed trigger events accepted per second: a load generator (this process, 16 threads with kept-alive HTTP
connections) posts distinct signed events to one trigger of a running echo guild, then sends each of a sample
again; each event is checked (rate, timestamp, HMAC, replay cache) and accepted as a queued run of its agent.

Prints events accepted per second and their latency (p50, p99), the replays refused (all must be), and how long
after the last acceptance every run had ended. Embedded, then production when PostgreSQL and Redis answer here.
"""

from __future__ import annotations

import argparse
import hashlib
import hmac
import http.client
import json
import threading
import time
from typing import Any

from bench.socket_bench import ECHO_AGENT, RESULTS, add_service_arguments, in_both_modes, launch_guild, percentile
from tests.support.live_server import LiveServer

ECHO_ID = "echo"
REPLAYS = 200


def signed(secret: str, body: bytes) -> dict[str, str]:
    timestamp = str(int(time.time()))
    signature = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return {"Content-Type": "application/json", "X-Zerg-Timestamp": timestamp, "X-Zerg-Signature": signature}


def post_all(server: LiveServer, path: str, requests: list[tuple[bytes, dict[str, str]]], threads: int
             ) -> tuple[list[int], list[float], float]:
    """Each request once, over `threads` kept-alive connections: the statuses, the latencies (ms), the seconds."""
    statuses: list[int] = [0] * len(requests)
    latencies: list[float] = [0.0] * len(requests)

    def work(start: int) -> None:
        connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
        for index in range(start, len(requests), threads):
            body, headers = requests[index]
            began = time.perf_counter()
            connection.request("POST", path, body=body, headers=headers)
            response = connection.getresponse()
            response.read()
            latencies[index] = (time.perf_counter() - began) * 1000
            statuses[index] = response.status
        connection.close()

    began = time.perf_counter()
    workers = [threading.Thread(target=work, args=(n,)) for n in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    return statuses, latencies, time.perf_counter() - began


def drive(server: LiveServer, events: int, threads: int) -> dict[str, Any]:
    import asyncio

    guild_id, _ = asyncio.run(launch_guild(server, agent={**ECHO_AGENT, "id": ECHO_ID}))
    status, trigger = server.request("POST", f"/api/guilds/{guild_id}/triggers", {"agent": ECHO_AGENT["name"]},
                                     headers={"X-User-Id": "bench"})
    assert status == 201, trigger
    path = f"/api/triggers/{trigger['id']}/events"
    requests = []
    for number in range(events):
        body = json.dumps({"event": "order.created", "order": number}).encode()
        requests.append((body, signed(trigger["secret"], body)))
    statuses, latencies, seconds = post_all(server, path, requests, threads)
    accepted_at = time.perf_counter()
    accepted = statuses.count(202)
    replay_statuses, _, _ = post_all(server, path, requests[:REPLAYS], threads)
    while True:  # every run ended (the echo agent answers each): the events were not only taken, they were handled
        status, waiting = server.request("GET", f"/api/runs?guild_id={guild_id}&status=queued&status=running&limit=1",
                                         headers={"X-User-Id": "bench"})
        waited = time.perf_counter() - accepted_at
        if (status == 200 and not waiting["results"]) or waited > 120:
            break
        time.sleep(0.05)
    return {"events": events, "accepted": accepted, "other_statuses": sorted(set(statuses) - {202}),
            "accepted_per_s": round(accepted / seconds, 1), "p50_ms": round(percentile(latencies, 50), 2),
            "p99_ms": round(percentile(latencies, 99), 2), "replays": REPLAYS,
            "replays_refused": replay_statuses.count(409), "runs_done_after_s": round(waited, 2)}


def run_mode(name: str, env: dict[str, str], args: argparse.Namespace, workers: int = 1) -> list[dict[str, Any]]:
    server = LiveServer(env={"LOG_LEVEL": "WARNING", "GUILDSITE_TRIGGER_RATE_PER_MINUTE": "10000000", **env},
                        worker_count=workers)
    server.migrate()
    server.start()
    try:
        row = drive(server, args.events, args.threads)
    finally:
        server.stop()
    row["mode"] = name
    return [row]


def main(argv: list[str] | None = None) -> list[dict[str, Any]]:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--events", type=int, default=3000)
    parser.add_argument("--threads", type=int, default=16)
    add_service_arguments(parser)
    rows = in_both_modes(run_mode, parser.parse_args(argv))
    print(f"\n{'mode':<11}{'events':>8}{'accepted':>9}{'events/s':>10}{'p50 ms':>8}{'p99 ms':>8}{'replays refused':>17}"
          f"{'runs done after s':>19}")
    for row in rows:
        print(f"{row['mode']:<11}{row['events']:>8}{row['accepted']:>9}{row['accepted_per_s']:>10}{row['p50_ms']:>8}"
              f"{row['p99_ms']:>8}{row['replays_refused']:>11}/{row['replays']:<5}{row['runs_done_after_s']:>19}")
        if row["other_statuses"]:
            print(f"  {row['mode']}: other answers than 202: {row['other_statuses']}")
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "triggers.json").write_text(json.dumps(rows, indent=2))
    return rows


if __name__ == "__main__":
    main()
