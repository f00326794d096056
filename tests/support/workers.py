"""Real Celery workers (with beat) in subprocesses, for the Celery engine's tests and the bench."""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _die_with_parent() -> None:
    # A worker left behind by an interrupted run would take the next run's tasks: it goes with us.
    ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


class CeleryWorkers:
    def __init__(self, env: dict[str, str], *, count: int = 1, concurrency: int = 2, beat: bool = True,
                 log_dir: str | None = None) -> None:
        self.env = {**os.environ, "PYTHONUNBUFFERED": "1", "GUILDSITE_DIAGNOSTIC_AGENTS": "1", **env}
        self.count = count
        self.concurrency = concurrency
        self.beat = beat
        self.log_dir = Path(log_dir or tempfile.mkdtemp(prefix="guildsite-workers-"))
        self.processes: list[subprocess.Popen] = []
        self._log_offsets: dict[Path, int] = {}

    def start_one(self, index: int, *, beat: bool) -> subprocess.Popen:
        args = [sys.executable, "-m", "celery", "-A", "guildsite", "worker", "-P", "prefork",
                "-c", str(self.concurrency), "-n", f"w{index}-{os.getpid()}@%h", "--loglevel", "INFO",
                "--without-gossip", "--without-mingle", "--without-heartbeat"]
        if beat:
            args += ["-B", "-s", str(self.log_dir / "beat-schedule")]
        path = self.log_dir / f"worker{index}.log"
        self._log_offsets[path] = path.stat().st_size if path.exists() else 0  # "ready" of this start only
        log = path.open("ab")
        process = subprocess.Popen(args, cwd=ROOT, env=self.env, stdout=log, stderr=subprocess.STDOUT,
                                   start_new_session=True, preexec_fn=_die_with_parent)
        self.processes.append(process)
        return process

    def start(self) -> CeleryWorkers:
        for index in range(self.count):
            self.start_one(index, beat=self.beat and index == 0)
        self.wait_ready()
        return self

    def wait_ready(self, timeout: float = 60) -> None:
        """Until every worker says it is ready (connected to the broker, consuming)."""
        deadline = time.monotonic() + timeout
        while True:
            for process in self.processes:
                if process.poll() is not None:
                    raise RuntimeError(f"a Celery worker exited at start:\n{self.log()}")
            ready = sum(b" ready." in _read_from(path, offset) for path, offset in self._log_offsets.items())
            if ready >= len(self._log_offsets):
                return
            if time.monotonic() > deadline:
                raise RuntimeError(f"Celery workers not ready within {timeout}s:\n{self.log()}")
            time.sleep(0.05)  # polling the workers' logs for "ready"

    def children(self, process: subprocess.Popen) -> list[int]:
        """The pool processes of one worker (they run the handlers)."""
        path = Path(f"/proc/{process.pid}/task/{process.pid}/children")
        return [int(pid) for pid in path.read_text().split()] if path.exists() else []

    def stop(self) -> None:
        # The main process only: a warm shutdown lets the pool finish what it holds.
        for process in self.processes:
            if process.poll() is None:
                process.terminate()
        for process in self.processes:
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(10)
            # Then whatever is left of its group. The embedded beat once outlived a clean warm shutdown (its SIGTERM
            # landed in a destructor, where Python ignores the exit) and sent beat tasks for the rest of a CI run.
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
        self.processes.clear()
        self._log_offsets.clear()

    def log(self, tail: int | None = 3000) -> str:
        """The workers' logs, each cut to its last `tail` characters (None: whole)."""
        return "\n".join(p.read_text(errors="replace")[-tail if tail else 0:]
                         for p in sorted(self.log_dir.glob("worker*.log")))


def _read_from(path: Path, offset: int) -> bytes:
    with path.open("rb") as log:
        log.seek(offset)
        return log.read()
