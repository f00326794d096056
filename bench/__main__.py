"""`make bench`: every benchmark, each in its own process; figures printed, JSON in bench/results/."""

from __future__ import annotations

import subprocess
import sys

from bench.socket_bench import services_answer

BENCH_REDIS = "redis://127.0.0.1:6379/11"


def main() -> int:
    # Redis figures too whenever PostgreSQL and Redis answer here (production mode of the socket bench).
    redis_args = ["--redis-url", BENCH_REDIS] if services_answer() else []
    suites = [("bench.messaging_bench", redis_args), ("bench.runtime_bench", []), ("bench.socket_bench", []),
              ("bench.crowd_bench", []), ("bench.llm_bench", []), ("bench.live_bench", []),
              ("bench.schedule_bench", []), ("bench.trigger_bench", []), ("bench.external_bench", []),
              ("bench.grpc_bench", []), ("bench.dashboard_bench", [])]
    if redis_args:  # which Redis path carries replies to sockets (README: "Scaling out")
        suites.append(("bench.channel_layer_bench", redis_args))
    failed = []
    for module, args in suites:
        print(f"\n##### {module}", flush=True)
        if subprocess.call([sys.executable, "-m", module, *args]) != 0:
            failed.append(module)
    if failed:
        print(f"\nbenchmarks that failed to run: {', '.join(failed)}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
