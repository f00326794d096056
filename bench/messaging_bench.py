"""Messaging micro-benchmark: publish->delivery latency and throughput, per backend.

    .venv/bin/python -m bench.messaging_bench [--redis-url redis://127.0.0.1:6379/15] [--latency-count N]

Memory always; Redis when REDIS_URL is set or --redis-url is given (loopback only, keys under
a throw-away prefix that is deleted afterwards). One process, one event loop:

* latency: one publisher, one MessageTrackingClient subscriber, sequential (publish, wait
  for the handler to see it, repeat); p50 and p99 of the round trip;
* throughput: publishes kept `--window` in flight at once (pipelined), until the
  subscriber has handled them all; messages per second.

Prints a table and writes bench/results/messaging.json. Figures, never assertions.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import statistics
import sys
import time
import uuid
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).resolve().parent / "results" / "messaging.json"


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))
    return ordered[index]


async def _latency(bus: Any, count: int, time_limit: float) -> dict[str, Any]:
    from messaging.clients import MessageTrackingClient
    from messaging.message import Message

    loop = asyncio.get_running_loop()
    waiting: dict[int, asyncio.Future[float]] = {}

    async def handler(message: Message) -> None:
        future = waiting.pop(message.id, None)
        if future is not None and not future.done():
            future.set_result(time.perf_counter())

    client = MessageTrackingClient("bench-subscriber", "Bench", handler)
    await bus.subscribe("latency", client)
    samples: list[float] = []
    deadline = time.monotonic() + time_limit
    warmup = min(100, count // 10)
    for i in range(count + warmup):
        message = Message.create(sender={"id": "bench-publisher"}, topics="latency", payload={"i": i, "text": "ping"})
        future = waiting[message.id] = loop.create_future()
        start = time.perf_counter()
        await bus.publish(message)
        done = await asyncio.wait_for(future, timeout=10)
        if i >= warmup:
            samples.append(done - start)
        if time.monotonic() > deadline:
            break
    await bus.unregister_client(client)
    await client.close()
    return {
        "samples": len(samples),
        "p50_ms": _percentile(samples, 0.50) * 1000,
        "p99_ms": _percentile(samples, 0.99) * 1000,
        "mean_ms": statistics.fmean(samples) * 1000,
    }


async def _throughput(bus: Any, count: int, window: int, time_limit: float) -> dict[str, Any]:
    from messaging.clients import MessageTrackingClient
    from messaging.message import Message

    received = 0
    all_in = asyncio.Event()
    target = count

    async def handler(message: Message) -> None:
        nonlocal received
        received += 1
        if received >= target:
            all_in.set()

    client = MessageTrackingClient("bench-sink", "Sink", handler)
    await bus.subscribe("throughput", client)
    messages = [
        Message.create(sender={"id": "bench-publisher"}, topics="throughput", payload={"i": i, "text": "x" * 64})
        for i in range(count)
    ]
    size = len(messages[0].to_json())
    semaphore = asyncio.Semaphore(window)
    deadline = time.monotonic() + time_limit

    async def publish(message: Message) -> None:
        async with semaphore:
            await bus.publish(message)

    start = time.perf_counter()
    tasks = []
    sent = 0
    for message in messages:
        if time.monotonic() > deadline:
            break
        tasks.append(asyncio.ensure_future(publish(message)))
        sent += 1
        if len(tasks) >= window * 4:  # keep the task list bounded
            await asyncio.gather(*tasks)
            tasks.clear()
    await asyncio.gather(*tasks)
    target = sent
    if received >= target:
        all_in.set()
    await asyncio.wait_for(all_in.wait(), timeout=30)
    elapsed = time.perf_counter() - start
    await bus.unregister_client(client)
    await client.close()
    return {"messages": sent, "seconds": elapsed, "per_second": sent / elapsed, "message_bytes": size}


async def _run_backend(name: str, config: Any, args: argparse.Namespace) -> dict[str, Any]:
    from messaging.bus import MessagingInterface

    bus = MessagingInterface(f"bench-{uuid.uuid4().hex[:8]}", config)
    try:
        latency = await _latency(bus, args.latency_count, args.time_limit)
        throughput = await _throughput(bus, args.throughput_count, args.window, args.time_limit)
    finally:
        await bus.shutdown()
    return {"backend": name, "latency": latency, "throughput": throughput}


def _delete_prefix(url: str, prefix: str) -> None:
    from tests.support.redis_keys import delete_keys

    delete_keys(url, prefix)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--redis-url", default=os.environ.get("REDIS_URL"), help="also benchmark Redis here")
    parser.add_argument("--latency-count", type=int, default=2000)
    parser.add_argument("--throughput-count", type=int, default=10000)
    parser.add_argument("--window", type=int, default=64, help="publishes in flight during the throughput run")
    parser.add_argument("--time-limit", type=float, default=20.0, help="seconds per phase, at most")
    args = parser.parse_args(argv)

    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "guildsite.settings")
    import django

    django.setup()
    import orjson

    from messaging.config import memory_config, redis_config

    runs: list[tuple[str, Any, str | None]] = [("memory", memory_config(), None)]
    if args.redis_url:
        host = (args.redis_url.split("://", 1)[-1].split("@")[-1].split("/")[0]).split(":")[0]
        if host not in {"127.0.0.1", "localhost", "::1", "[::1]"}:
            parser.error(f"--redis-url must point at loopback, not {host}")
        prefix = f"gs-bench-{uuid.uuid4().hex[:8]}:"
        runs.append(("redis", redis_config(args.redis_url, key_prefix=prefix), prefix))

    results = []
    for name, config, prefix in runs:
        try:
            results.append(asyncio.run(_run_backend(name, config, args)))
        finally:
            if prefix:
                _delete_prefix(args.redis_url, prefix)

    header = f"{'backend':<8} {'latency p50':>12} {'latency p99':>12} {'msgs/s':>10} {'samples':>8} {'msg bytes':>10}"
    print(header)
    print("-" * len(header))
    for r in results:
        lat, thr = r["latency"], r["throughput"]
        print(
            f"{r['backend']:<8} {lat['p50_ms']:>9.3f} ms {lat['p99_ms']:>9.3f} ms {thr['per_second']:>10.0f} "
            f"{lat['samples']:>8} {thr['message_bytes']:>10}"
        )
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    report = {
        "generated_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "window": args.window,
        "results": results,
    }
    RESULTS.write_bytes(orjson.dumps(report, option=orjson.OPT_INDENT_2))
    print(f"\nwritten to {RESULTS}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
