"""LLM agents' token streaming through a real server, against the fake OpenAI-compatible provider on loopback.

Prints what guildsite adds between the provider writing a run's first token and the user socket receiving the
first stream chunk (p50, p99; the provider and this client share the machine's monotonic clock), first alone
and then with 20 users streaming at once, and the chunk and token throughput of those 20 streams. The load
generator (the fake provider and the socket clients) is this process; the server and its workers are others.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from pathlib import Path
from typing import Any

from bench.socket_bench import RESULTS, User, add_service_arguments, in_both_modes, launch_guild, percentile
from tests.support.fake_llm import Answer, FakeLLM
from tests.support.live_server import LiveServer

LLM_AGENT = {"name": "Assistant", "class_name": "guilds.agents.llm.LLMAgent", "additional_topics": ["llm_topic"],
             "listen_to_default_topic": False, "properties": {"history_limit": 0}}


class Streamer(User):
    """A user who asks and reads the streamed answer to its end: when its first chunk came, and how many."""

    def __init__(self, server: LiveServer, guild_id: str, index: int, provider: FakeLLM) -> None:
        super().__init__(server, guild_id, index)
        self.provider = provider
        self.added_ms: list[float] = []
        self.chunks = 0
        self.tokens = 0

    async def ask(self, number: int) -> bool:
        tag = f"{self.user_id}-q{number}"
        await self.user.send(json.dumps({"id": tag, "format": "text", "payload": {"text": tag}}))
        first_chunk_at = None
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            frame = json.loads(await asyncio.wait_for(self.user.recv(), 30))
            if frame["format"] == "stream_chunk":
                first_chunk_at = first_chunk_at or time.monotonic()
                self.chunks += 1
                if frame["payload"]["chunk_type"] == "assistant_message":
                    self.tokens += len(self.provider.default.deltas)
            elif frame["format"] == "text" and frame["sender"]["name"] == "Assistant":
                token_at = self.provider.first_delta_at.pop(tag, None)
                if first_chunk_at is not None and token_at is not None:
                    self.added_ms.append((first_chunk_at - token_at) * 1000)
                return True
        return False


async def drive(server: LiveServer, provider: FakeLLM, users: int, asks: int) -> dict[str, Any]:
    guild_id, _ = await launch_guild(server, agent=LLM_AGENT)
    crowd = [Streamer(server, guild_id, i, provider) for i in range(users)]
    await asyncio.gather(*(user.connect() for user in crowd))
    for user in crowd:  # warm up: the provider's HTTP pool, the thread, the first run
        await user.ask(-1)
        user.added_ms.clear()
        user.chunks = user.tokens = 0

    async def asking(user: Streamer) -> int:
        return sum([await user.ask(number) for number in range(asks)])

    started = time.perf_counter()
    answered = sum(await asyncio.gather(*(asking(user) for user in crowd)))
    elapsed = time.perf_counter() - started
    await asyncio.gather(*(user.close() for user in crowd))
    added = [ms for user in crowd for ms in user.added_ms]
    return {"users": users, "answers": answered, "lost": users * asks - answered,
            "added_first_chunk_p50_ms": round(percentile(added, 50), 2),
            "added_first_chunk_p99_ms": round(percentile(added, 99), 2),
            "chunks_per_s": round(sum(user.chunks for user in crowd) / elapsed, 1),
            "tokens_per_s": round(sum(user.tokens for user in crowd) / elapsed, 1)}


def run_mode(name: str, env: dict[str, str], args: argparse.Namespace, workers: int = 1) -> list[dict[str, Any]]:
    provider = FakeLLM()
    provider.default = Answer(deltas=[f"tok{i} " for i in range(args.tokens)])
    server = LiveServer(env={"GUILDSITE_WS_RATE_PER_SECOND": "100000", "GUILDSITE_WS_RATE_BURST": "100000",
                             "GUILDSITE_WS_HISTORY_ON_CONNECT": "0", "LOG_LEVEL": "WARNING",
                             "LLM_BASE_URL": provider.base_url, "LLM_MODEL": "gpt-4o-mini", "OPENAI_API_KEY": "sk-bench",
                             **env}, worker_count=workers)
    server.migrate()
    server.start()
    rows = []
    try:
        for users, asks in ((1, args.asks_alone), (args.users, args.asks_each)):
            row = asyncio.run(drive(server, provider, users, asks))
            row["mode"] = name
            rows.append(row)
    finally:
        server.stop()
        provider.close()
    return rows


def main(argv: list[str] | None = None) -> list[dict[str, Any]]:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--users", type=int, default=20, help="users streaming at once")
    parser.add_argument("--asks-alone", type=int, default=50, help="questions of the single user")
    parser.add_argument("--asks-each", type=int, default=5, help="questions of each concurrent user")
    parser.add_argument("--tokens", type=int, default=200, help="tokens (deltas) in each answer")
    add_service_arguments(parser)
    rows = in_both_modes(run_mode, parser.parse_args(argv))
    print("\nadded = provider's first token written -> the socket's first chunk read (targets: p50 <= 5 ms "
          "embedded, <= 15 ms production)")
    print(f"{'mode':<11}{'users':>6}{'answers':>8}{'added p50':>10}{'added p99':>10}{'chunks/s':>10}{'tokens/s':>10}"
          f"{'lost':>6}")
    for row in rows:
        print(f"{row['mode']:<11}{row['users']:>6}{row['answers']:>8}{row['added_first_chunk_p50_ms']:>10}"
              f"{row['added_first_chunk_p99_ms']:>10}{row['chunks_per_s']:>10}{row['tokens_per_s']:>10}{row['lost']:>6}")
    RESULTS.mkdir(exist_ok=True)
    Path(RESULTS / "llm.json").write_text(json.dumps(rows, indent=2))
    return rows


if __name__ == "__main__":
    main()
