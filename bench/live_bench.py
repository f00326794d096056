"""The live socket (/api/ws) fanning events out: 200 sockets follow one guild, messages posted over REST to its
echo agent make runs, and each run's updates reach every socket.

Prints the events made, the frames delivered, frames per second fanned out (delivered frames over the time from
the first post to the last frame), and per event the spread from its first socket to its last (p50, p99). The
load generator (the sockets and the REST client) is this process; the server and its workers are others.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from typing import Any

import websockets

from bench.socket_bench import ECHO_AGENT, RESULTS, add_service_arguments, in_both_modes, launch_guild, percentile
from tests.support.live_server import LiveServer

ECHO_ID = "echo"


class Follower:
    """A live socket following the guild: when each event's frame arrived."""

    def __init__(self, server: LiveServer, index: int) -> None:
        self.url = f"{server.ws_base}/api/ws?user_id=watcher{index}"
        self.arrivals: dict[str, float] = {}  # event id -> when its frame came

    async def follow(self, guild_id: str) -> None:
        self.socket = await websockets.connect(self.url, max_size=None)
        await self.socket.send(json.dumps({"v": 1, "id": "s", "topic": "system", "type": "subscribe",
                                           "data": {"topics": [f"guild:{guild_id}"]}}))
        while True:
            frame = json.loads(await asyncio.wait_for(self.socket.recv(), 20))
            if frame["type"] == "subscribe_ack" and frame["topic"] == f"guild:{guild_id}":
                return

    async def read(self, expected: int, deadline: float) -> None:
        while len(self.arrivals) < expected and time.monotonic() < deadline:
            try:
                frame = json.loads(await asyncio.wait_for(self.socket.recv(), max(0.01, deadline - time.monotonic())))
            except TimeoutError:
                return
            if frame["type"] == "ping":
                await self.socket.send(json.dumps({"v": 1, "id": "p", "topic": "system", "type": "pong", "data": {}}))
            elif frame["type"] == "run_update":
                self.arrivals[frame["id"]] = time.perf_counter()


def post(server: LiveServer, guild_id: str, number: int) -> None:
    status, body = server.request("POST", f"/api/guilds/{guild_id}/messages",
                                  {"format": "text", "payload": {"text": f"m{number}"}, "agent": ECHO_ID},
                                  headers={"X-User-Id": "bench"})
    assert status == 202, body


async def drive(server: LiveServer, sockets: int, messages: int) -> dict[str, Any]:
    guild_id, _ = await launch_guild(server, agent={**ECHO_AGENT, "id": ECHO_ID})
    followers = [Follower(server, i) for i in range(sockets)]
    for start in range(0, sockets, 50):  # in batches: a burst of handshakes is not what is measured
        await asyncio.gather(*(f.follow(guild_id) for f in followers[start:start + 50]))
    expected = 2 * messages  # each run: running, then succeeded
    started = time.perf_counter()
    readers = [asyncio.ensure_future(f.read(expected, time.monotonic() + 60)) for f in followers]
    posting = asyncio.Semaphore(8)

    async def one(number: int) -> None:
        async with posting:
            await asyncio.to_thread(post, server, guild_id, number)

    await asyncio.gather(*(one(n) for n in range(messages)))
    await asyncio.gather(*readers)
    delivered = sum(len(f.arrivals) for f in followers)
    last = max((t for f in followers for t in f.arrivals.values()), default=started)
    spreads = []
    for event in {event for f in followers for event in f.arrivals}:
        times = [f.arrivals[event] for f in followers if event in f.arrivals]
        spreads.append((max(times) - min(times)) * 1000)
    await asyncio.gather(*(f.socket.close() for f in followers))
    return {"sockets": sockets, "events": expected, "delivered": delivered, "missed": expected * sockets - delivered,
            "frames_per_s": round(delivered / (last - started), 1),
            "spread_p50_ms": round(percentile(spreads, 50), 2), "spread_p99_ms": round(percentile(spreads, 99), 2)}


def run_mode(name: str, env: dict[str, str], args: argparse.Namespace, workers: int = 1) -> list[dict[str, Any]]:
    server = LiveServer(env={"LOG_LEVEL": "WARNING", **env}, worker_count=workers)
    server.migrate()
    server.start()
    try:
        row = asyncio.run(drive(server, args.sockets, args.messages))
    finally:
        server.stop()
    row["mode"] = name
    return [row]


def main(argv: list[str] | None = None) -> list[dict[str, Any]]:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sockets", type=int, default=200)
    parser.add_argument("--messages", type=int, default=200, help="posted messages: two run_update events each")
    add_service_arguments(parser)
    rows = in_both_modes(run_mode, parser.parse_args(argv))
    print(f"\n{'mode':<11}{'sockets':>8}{'events':>8}{'frames':>9}{'missed':>8}{'frames/s':>10}{'spread p50':>12}"
          f"{'p99 ms':>8}")
    for row in rows:
        print(f"{row['mode']:<11}{row['sockets']:>8}{row['events']:>8}{row['delivered']:>9}{row['missed']:>8}"
              f"{row['frames_per_s']:>10}{row['spread_p50_ms']:>12}{row['spread_p99_ms']:>8}")
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "live.json").write_text(json.dumps(rows, indent=2))
    return rows


if __name__ == "__main__":
    main()
