"""The model provider's SDK (`openai`) and MCP's (`mcp`), loaded on a process's first call, not at start.

Together they take about 0.9 s of CPU and 30 MB to import. Every process that sets Django up (web, both Celery
workers, beat) would pay that at each start, and most never call a model. The first call imports them on a
thread, so the event loop, which carries the process's other agents and sockets, goes on meanwhile."""

from __future__ import annotations

import asyncio
import importlib

_loaded: set[str] = set()


async def load(*modules: str) -> None:
    """Import `modules` off the event loop, unless this process has them already."""
    missing = [name for name in modules if name not in _loaded]
    if missing:
        await asyncio.to_thread(lambda: [importlib.import_module(name) for name in missing])
        _loaded.update(missing)
