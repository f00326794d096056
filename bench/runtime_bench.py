"""Guild runtime on the in-process engine, without sockets: launch→RUNNING and an echo round trip
through the bus (user inbox → proxy → EchoAgent → proxy → notifications). Prints figures, writes JSON."""

from __future__ import annotations

import asyncio
import json
import os
import statistics
import tempfile
import time
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"


def setup() -> None:
    os.environ.setdefault("GUILDSITE_VAR_DIR", tempfile.mkdtemp(prefix="guildsite-bench-"))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "guildsite.settings")
    os.environ.setdefault("LOG_LEVEL", "WARNING")
    import django
    from django.core.management import call_command

    django.setup()
    call_command("migrate", verbosity=0)


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


async def measure(launches: int, echoes: int, users: int) -> dict:
    from asgiref.sync import sync_to_async

    from guilds.engines import bus_of, engine_named
    from guilds.runtime import formats
    from guilds.runtime.requests import system_request
    from guilds.services import guild_create
    from guilds.spec import validate_guild_spec
    from messaging import topics as t
    from messaging.clients import SimpleClient
    from messaging.message import AgentTag, Message

    engine = engine_named("inprocess")
    spec = validate_guild_spec({"name": "bench", "agents": [{
        "name": "EchoAgent", "class_name": "rustic_ai.core.agents.testutils.echo_agent.EchoAgent",
        "additional_topics": ["echo_topic"], "listen_to_default_topic": False}]})
    from guildsite.accounts.services import organization_for_development, user_get_or_create

    def create_guild():
        launcher = user_get_or_create("bench")
        organization = organization_for_development(organization_id="bench", user=launcher)
        return guild_create(spec=spec, name="bench", launched_by=launcher, organization=organization, launch=False)

    create = sync_to_async(create_guild)

    launch_ms: list[float] = []
    guild = None
    for _ in range(launches):
        guild = await create()
        bus = bus_of(guild.id, guild.spec)
        running = asyncio.Event()

        def watch(message: Message, running: asyncio.Event = running) -> None:
            if message.format == formats.GUILD_STATUS and message.payload["status"] == "RUNNING":
                running.set()

        watcher = SimpleClient(id="bench-watch", name="w", handler=watch)
        await bus.register_client(watcher)
        await bus.subscribe(t.GUILD_STATUS_TOPIC, watcher)
        started = time.perf_counter()
        await engine.launch(guild.id)
        await asyncio.wait_for(running.wait(), 10)
        launch_ms.append((time.perf_counter() - started) * 1000)
        await bus.unregister_client(watcher)

    bus = bus_of(guild.id, guild.spec)
    waiting: dict[str, asyncio.Future] = {}

    def on_reply(message: Message) -> None:
        future = waiting.pop(str(message.in_response_to), None)
        if future is not None and message.payload.get("text", "").startswith("Echo:"):
            future.set_result(time.perf_counter())

    people = [f"u{i}" for i in range(users)]
    for user in people:
        listener = SimpleClient(id=f"bench-{user}", name=user, handler=on_reply)
        await bus.register_client(listener)
        await bus.subscribe(t.user_notifications(user), listener)
        await system_request(bus_of(guild.id, guild.spec), format_name=formats.USER_AGENT_CREATION_REQUEST,
                             payload={"user_id": user, "user_name": user}, user_id=user)
    await asyncio.sleep(0.5)

    async def echo_once(user: str) -> float:
        message = Message.create(sender=AgentTag(id=user), topics=t.user_inbox(user), payload={"text": "hi"},
                                 format="text")
        future = asyncio.get_running_loop().create_future()
        waiting[str(message.id)] = future
        started = time.perf_counter()
        await bus.publish(message)
        return (await asyncio.wait_for(future, 5) - started) * 1000

    single = [await echo_once(people[0]) for _ in range(echoes)]

    async def user_loop(user: str, count: int) -> list[float]:
        return [await echo_once(user) for _ in range(count)]

    started = time.perf_counter()
    per_user = max(1, echoes // users)
    crowd = [lat for lats in await asyncio.gather(*(user_loop(u, per_user) for u in people)) for lat in lats]
    elapsed = time.perf_counter() - started
    await engine.shutdown()
    return {
        "launch_to_running_ms": {"p50": round(statistics.median(launch_ms), 2), "max": round(max(launch_ms), 2),
                                 "n": launches},
        "echo_1_user_ms": {"p50": round(percentile(single, 50), 3), "p99": round(percentile(single, 99), 3),
                           "n": len(single)},
        f"echo_{users}_users": {"per_s": round(len(crowd) / elapsed, 1), "p50_ms": round(percentile(crowd, 50), 3),
                                "p99_ms": round(percentile(crowd, 99), 3), "n": len(crowd)},
    }


def main() -> dict:
    setup()
    from guilds.runtime import loop as runtime_loop

    figures = runtime_loop.run(measure(launches=20, echoes=1000, users=20), timeout=300)
    print("\nguild runtime, in-process engine, memory bus (no sockets)")
    for name, values in figures.items():
        print(f"  {name:<22} " + "  ".join(f"{k}={v}" for k, v in values.items()))
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "runtime.json").write_text(json.dumps(figures, indent=2))
    return figures


if __name__ == "__main__":
    main()
