"""AUTH_DISABLED is for development only: the site refuses to start with it when DEBUG is off."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PRODUCTION = {"DEBUG": "0", "SECRET_KEY": "a-production-secret-key-for-this-test-only-0123456789",
              "ALLOWED_HOSTS": "guildsite.example.com", "REDIS_URL": "redis://127.0.0.1:6379/14"}


def _start(tmp_path: Path, **variables: str) -> subprocess.CompletedProcess:
    """Load the settings in a fresh process, as `manage.py` or daphne would; print what auth looks like."""
    env = {k: v for k, v in os.environ.items()
           if k not in {"DATABASE_URL", "REDIS_URL", "DEBUG", "AUTH_DISABLED", "SECRET_KEY", "ALLOWED_HOSTS",
                        "GUILDSITE_EXECUTION_ENGINE"}}
    env.update(GUILDSITE_VAR_DIR=str(tmp_path), DJANGO_SETTINGS_MODULE="guildsite.settings", **variables)
    script = "import django; django.setup(); from django.conf import settings; print('AUTH_DISABLED', settings.AUTH_DISABLED)"
    return subprocess.run([sys.executable, "-c", script], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=60, check=False)


@pytest.mark.parametrize("value", ["1", "true", "on"])
def test_auth_disabled_without_debug_refuses_to_start_saying_why(tmp_path, value):
    result = _start(tmp_path, **PRODUCTION, AUTH_DISABLED=value)

    assert result.returncode != 0
    assert "ConfigurationError" in result.stderr
    assert "AUTH_DISABLED" in result.stderr
    assert "DEBUG" in result.stderr
    assert "AUTH_DISABLED True" not in result.stdout


def test_without_debug_and_without_auth_disabled_the_site_starts_with_auth_on(tmp_path):
    result = _start(tmp_path, **PRODUCTION)

    assert result.returncode == 0, result.stderr
    assert "AUTH_DISABLED False" in result.stdout


def test_auth_disabled_0_without_debug_starts_with_auth_on(tmp_path):
    result = _start(tmp_path, **PRODUCTION, AUTH_DISABLED="0")

    assert result.returncode == 0, result.stderr
    assert "AUTH_DISABLED False" in result.stdout


def test_with_debug_auth_is_disabled_by_default_and_can_be_turned_on(tmp_path):
    development = _start(tmp_path, DEBUG="1")
    debug_with_auth = _start(tmp_path, DEBUG="1", AUTH_DISABLED="0")

    assert development.returncode == 0, development.stderr
    assert "AUTH_DISABLED True" in development.stdout
    assert debug_with_auth.returncode == 0, debug_with_auth.stderr
    assert "AUTH_DISABLED False" in debug_with_auth.stdout


def test_without_debug_the_in_process_engine_needs_redis_for_its_leases(tmp_path):
    production = {key: value for key, value in PRODUCTION.items() if key != "REDIS_URL"}
    result = _start(tmp_path, **production, GUILDSITE_EXECUTION_ENGINE="inprocess")

    assert result.returncode != 0
    assert "REDIS_URL" in result.stderr
    assert "lease" in result.stderr
