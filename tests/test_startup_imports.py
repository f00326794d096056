"""What every process of the site pays at start: setting the site up (Django, the Celery app and its tasks, the
URLs, the ASGI application) leaves the model provider's and MCP's SDKs unloaded. Together they cost each process
about 0.9 s of CPU and 30 MB, paid by all of them at once at every restart; only a call to a model or a tool
needs them."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

SDKS = ("openai", "mcp", "mcp_types")

SET_UP_THE_SITE = f"""
import sys
import django
django.setup()
from guildsite.celery import app
app.loader.import_default_modules()
import guildsite.asgi
from django.urls import get_resolver
get_resolver().url_patterns
print("loaded:", *sorted(name for name in {SDKS!r} if name in sys.modules))
print("agents:", "guilds.agents.llm.agent" in sys.modules)
"""


def test_setting_the_site_up_leaves_the_llm_sdks_unloaded():
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "guildsite.settings", "DEBUG": "1"}
    done = subprocess.run([sys.executable, "-c", SET_UP_THE_SITE], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "loaded:\n" in done.stdout, done.stdout
    # the LLM agent's own module is loaded (budgets and the catalog use it): the SDKs stay out all the same
    assert "agents: True" in done.stdout, done.stdout


LOAD_WHILE_THE_LOOP_RUNS = """
import asyncio
import sys
import django
django.setup()
from guilds.agents.llm import sdks

async def main():
    ticks = 0

    async def ticker():
        nonlocal ticks
        while True:
            await asyncio.sleep(0)
            ticks += 1

    beating = asyncio.ensure_future(ticker())
    await asyncio.sleep(0)
    before = ticks
    await sdks.load("openai", "mcp", "mcp.client.streamable_http")
    beating.cancel()
    print("loaded:", all(name in sys.modules for name in ("openai", "mcp", "mcp.client.streamable_http")))
    print("ticks while loading:", ticks - before)

asyncio.run(main())
"""


def test_the_first_call_loads_the_sdks_while_the_event_loop_goes_on():
    """A process's first call to a model or a tool imports the SDKs on a thread: the loop carrying its other agents
    and sockets keeps running meanwhile."""
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "guildsite.settings", "DEBUG": "1"}
    done = subprocess.run([sys.executable, "-c", LOAD_WHILE_THE_LOOP_RUNS], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "loaded: True" in done.stdout, done.stdout
    ticks = int(done.stdout.split("ticks while loading:")[1])
    assert ticks > 10, done.stdout  # on the loop itself, the import would leave it no turn at all
