"""Run one action in several threads released at the same instant (two ticks, two requests with one key): what
each returned. Each thread closes its own database connection, so no session outlives the test."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import TypeVar

from django.db import connection

T = TypeVar("T")


def at_once(action: Callable[[], T], count: int = 2, timeout: float = 60) -> list[T]:
    start = threading.Barrier(count)
    results: list[T] = []
    errors: list[BaseException] = []

    def run() -> None:
        try:
            start.wait(5)
            results.append(action())
        except BaseException as exc:  # re-raised in the test's thread
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=run) for _ in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout)
    if errors:
        raise errors[0]
    assert len(results) == count, f"{count - len(results)} of {count} did not finish within {timeout} s"
    return results
