"""`make bench`: every benchmark, each in its own process; figures printed, JSON in bench/results/."""

from __future__ import annotations

import subprocess
import sys

SUITES = ["bench.messaging_bench", "bench.runtime_bench", "bench.socket_bench"]


def main() -> int:
    failed = []
    for module in SUITES:
        print(f"\n##### {module}", flush=True)
        if subprocess.call([sys.executable, "-m", module]) != 0:
            failed.append(module)
    if failed:
        print(f"\nbenchmarks that failed to run: {', '.join(failed)}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
