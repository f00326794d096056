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
