"""How a reply gets to a socket's process: the two Redis channel layers against the bus's own pub/sub.

    .venv/bin/python -m bench.channel_layer_bench [--redis-url redis://127.0.0.1:6379/11] [--count N]

A worker's reply is stored on its topic either way (history, resume by last_seen_id). Then it
reaches the socket's process by one of:

* `RedisChannelLayer` (channels-redis core): a group_send to the socket's group;
* `RedisPubSubChannelLayer`: the same through Redis PUBLISH;
* the bus: the store script PUBLISHes the stored message itself and the socket's process is
  subscribed to the topic: no second send (what guildsite does).

One process, loopback, sequential round trips (send, wait for the receiver, repeat) and 20
concurrent senders. Prints a table and writes bench/results/channel_layers.json; figures, never
assertions.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import time
import uuid
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).resolve().parent / "results" / "channel_layers.json"
PAYLOAD = {"text": "Echo: hello there, how are you today?", "format": "text", "padding": "x" * 400}


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


async def measure(send, receive, count: int, senders: int) -> dict[str, Any]:
    """`send(i)` then `receive()` until i arrives: sequential p50/p99, then messages/s with many senders."""
    for i in range(20):  # warm up connections
        await send(i)
        await receive()
    latencies = []
    for i in range(count):
        started = time.perf_counter()
        await send(i)
        await receive()
        latencies.append((time.perf_counter() - started) * 1000)
    started = time.perf_counter()
    total = count * 2

    async def sender(offset: int) -> None:
        for i in range(offset, total, senders):
            await send(i)

    async def receiver() -> None:
        for _ in range(total):
            await receive()

    await asyncio.gather(receiver(), *(sender(k) for k in range(senders)))
    elapsed = time.perf_counter() - started
    return {"p50_ms": round(percentile(latencies, 50), 3), "p99_ms": round(percentile(latencies, 99), 3),
            "sequential_per_s": round(count / (sum(latencies) / 1000)), f"{senders}_senders_per_s": round(total / elapsed)}


async def channel_layer(layer_class: type, url: str, count: int, senders: int) -> dict[str, Any]:
    # Capacity beyond the burst: group_send drops what does not fit, and nothing may be lost here.
    layer = layer_class(hosts=[url], prefix=f"gs-bench-{uuid.uuid4().hex[:6]}", capacity=100_000)
    channel = await layer.new_channel()
    group = f"socket{uuid.uuid4().hex[:6]}"
    await layer.group_add(group, channel)
    try:
        return await measure(lambda i: layer.group_send(group, {"type": "reply", "n": i, **PAYLOAD}),
                             lambda: layer.receive(channel), count, senders)
    finally:
        await layer.group_discard(group, channel)
        await (layer.flush() if hasattr(layer, "flush") else asyncio.sleep(0))
        if hasattr(layer, "close_pools"):
            await layer.close_pools()


async def bus_pubsub(url: str, count: int, senders: int) -> dict[str, Any]:
    from messaging.bus import MessagingInterface
    from messaging.clients import SimpleClient
    from messaging.config import MessagingConfig
    from messaging.message import Message
    from tests.support.redis_keys import delete_keys

    prefix = f"gs-bench-{uuid.uuid4().hex[:6]}:"
    config = MessagingConfig(backend_module="messaging.backends.redis", backend_class="RedisMessagingBackend",
                             backend_config={"url": url, "key_prefix": prefix})
    bus = MessagingInterface(f"bench{uuid.uuid4().hex[:6]}", config)
    arrived: asyncio.Queue[Message] = asyncio.Queue()
    await bus.subscribe("user:bench:notifications", SimpleClient("socket", "Socket", arrived.put_nowait))
    sender = {"id": "worker", "name": "Worker"}
    try:
        return await measure(
            lambda i: bus.publish(Message.create(sender=sender, topics="user:bench:notifications", payload=PAYLOAD)),
            arrived.get, count, senders)
    finally:
        await bus.shutdown()
        delete_keys(url, prefix)


async def run(url: str, count: int, senders: int) -> list[dict[str, Any]]:
    from channels_redis.core import RedisChannelLayer
    from channels_redis.pubsub import RedisPubSubChannelLayer

    rows = []
    for name, coro in (("RedisChannelLayer (group_send)", channel_layer(RedisChannelLayer, url, count, senders)),
                       ("RedisPubSubChannelLayer (group_send)", channel_layer(RedisPubSubChannelLayer, url, count, senders)),
                       ("bus: stored + PUBLISH, subscribed", bus_pubsub(url, count, senders))):
        rows.append({"path": name, **await coro})
    return rows


def main(argv: list[str] | None = None) -> list[dict[str, Any]]:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--redis-url", default=os.environ.get("REDIS_URL") or "redis://127.0.0.1:6379/11")
    parser.add_argument("--count", type=int, default=2000)
    parser.add_argument("--senders", type=int, default=20)
    args = parser.parse_args(argv)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "guildsite.settings")
    os.environ["REDIS_URL"] = args.redis_url
    import django

    django.setup()
    rows = asyncio.run(run(args.redis_url, args.count, args.senders))
    print(f"\n{'path to the socket process':<40}{'p50 ms':>9}{'p99 ms':>9}{'seq/s':>8}{f'{args.senders} senders/s':>14}")
    for row in rows:
        print(f"{row['path']:<40}{row['p50_ms']:>9}{row['p99_ms']:>9}{row['sequential_per_s']:>8}"
              f"{row[f'{args.senders}_senders_per_s']:>14}")
    print("(the channel layers' rows come on top of storing the reply, which the bus row includes)")
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text(json.dumps(rows, indent=2))
    return rows


if __name__ == "__main__":
    main()
