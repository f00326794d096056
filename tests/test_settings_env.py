"""Settings read the environment through guildsite.env and stop on malformed values."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from guildsite.env import (
    ConfigurationError,
    database_from_url,
    env_bool,
    env_float,
    env_int,
    env_list,
    env_str,
    redis_url_checked,
)

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.parametrize(("raw", "expected"), [("1", True), ("true", True), ("Yes", True), ("on", True),
                                               ("0", False), ("FALSE", False), ("no", False), ("off", False)])
def test_booleans(monkeypatch, raw, expected):
    monkeypatch.setenv("DEBUG", raw)
    assert env_bool("DEBUG", not expected) is expected


def test_unset_and_empty_take_the_default(monkeypatch):
    monkeypatch.delenv("DEBUG", raising=False)
    monkeypatch.setenv("PORT", "")
    assert env_bool("DEBUG", True) is True
    assert env_int("PORT", 8880) == 8880
    assert env_str("PORT", "x") == "x"


def test_a_malformed_boolean_fails_naming_the_variable(monkeypatch):
    monkeypatch.setenv("DEBUG", "maybe")
    with pytest.raises(ConfigurationError, match="DEBUG='maybe'"):
        env_bool("DEBUG", True)


@pytest.mark.parametrize(("raw", "message"), [("abc", "not an integer"), ("0", "below the minimum"),
                                              ("70000", "above the maximum")])
def test_a_malformed_port_fails(monkeypatch, raw, message):
    monkeypatch.setenv("PORT", raw)
    with pytest.raises(ConfigurationError, match=message):
        env_int("PORT", 8880, minimum=1, maximum=65535)


def test_numbers_and_lists(monkeypatch):
    monkeypatch.setenv("PORT", "9000")
    monkeypatch.setenv("GUILDSITE_HEARTBEAT_INTERVAL", "0.5")
    monkeypatch.setenv("ALLOWED_HOSTS", " example.com, ,api.example.com ")
    assert env_int("PORT", 8880, minimum=1, maximum=65535) == 9000
    assert env_float("GUILDSITE_HEARTBEAT_INTERVAL", 5.0) == 0.5
    assert env_list("ALLOWED_HOSTS", []) == ["example.com", "api.example.com"]
    monkeypatch.setenv("GUILDSITE_HEARTBEAT_INTERVAL", "soon")
    with pytest.raises(ConfigurationError, match="not a number"):
        env_float("GUILDSITE_HEARTBEAT_INTERVAL", 5.0)


def test_a_postgres_url_becomes_a_databases_entry():
    config = database_from_url("postgres://guild:s%40cret@db.example.com:6543/guildsite?sslmode=require")

    assert config["ENGINE"] == "django.db.backends.postgresql"
    assert config["NAME"] == "guildsite"
    assert config["USER"] == "guild"
    assert config["PASSWORD"] == "s@cret"
    assert config["HOST"] == "db.example.com"
    assert config["PORT"] == "6543"
    assert config["OPTIONS"] == {"sslmode": "require"}


def test_a_sqlite_url_becomes_a_databases_entry():
    assert database_from_url("sqlite:////tmp/x.sqlite3") == {"ENGINE": "django.db.backends.sqlite3",
                                                            "NAME": "/tmp/x.sqlite3"}


@pytest.mark.parametrize(("url", "message"), [("ftp://host/db", "unsupported scheme"),
                                              ("postgres://host:5432", "names no database"),
                                              ("sqlite://", "names no SQLite file")])
def test_a_malformed_database_url_fails(url, message):
    with pytest.raises(ConfigurationError, match=message):
        database_from_url(url)


def test_redis_urls():
    assert redis_url_checked("redis://127.0.0.1:6379/15") == "redis://127.0.0.1:6379/15"
    assert redis_url_checked(None) is None
    with pytest.raises(ConfigurationError, match="not a Redis URL"):
        redis_url_checked("nonsense")


@pytest.mark.parametrize(
    ("variable", "value"),
    [("DEBUG", "maybe"), ("PORT", "abc"), ("DATABASE_URL", "ftp://example.com/db"), ("REDIS_URL", "nonsense"),
     ("GUILDSITE_WS_FRAME_HARD_MAX_BYTES", "4096"),  # below the soft limit: no frame could get PAYLOAD_TOO_LARGE
     ("GUILDSITE_WS_OUTBOX_MAX_BYTES", "1000"), ("GUILDSITE_WS_OUTBOX_MAX_BYTES", "8MiB"),  # below 64 KiB; no integer
     ("GUILDSITE_GUILD_IDLE_SECONDS", "soon"), ("GUILDSITE_GUILD_IDLE_SECONDS", "-5"),
     ("GUILDSITE_GUILD_IDLE_SECONDS", "0.5"),  # under a second: guilds would be suspended between two frames
     ("GUILDSITE_LLM_PRICES", "cheap"), ("GUILDSITE_LLM_PRICES", '{"m": {"input": 1}}'),
     ("GUILDSITE_MCP_TOKEN_HOSTS", "tools.acme.com"), ("GUILDSITE_MCP_TOKEN_HOSTS", '{"ACME_TOKEN": "tools.acme.com"}')],
)
def test_the_site_refuses_to_start_with_a_malformed_value(tmp_path, variable, value):
    env = {k: v for k, v in os.environ.items() if k not in {"DATABASE_URL", "REDIS_URL", "DEBUG", "PORT"}}
    env.update(GUILDSITE_VAR_DIR=str(tmp_path), DJANGO_SETTINGS_MODULE="guildsite.settings", **{variable: value})

    result = subprocess.run(
        [sys.executable, "-c", "import django; django.setup()"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=60, check=False,
    )

    assert result.returncode != 0
    assert "ConfigurationError" in result.stderr
    assert variable in result.stderr


def _settings_with(tmp_path, **variables: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in {"DATABASE_URL", "REDIS_URL", "DEBUG", "PORT"}}
    env.update(GUILDSITE_VAR_DIR=str(tmp_path), DJANGO_SETTINGS_MODULE="guildsite.settings", **variables)
    return subprocess.run(
        [sys.executable, "-c", "import django; django.setup(); from django.conf import settings as s; "
                               "print(s.GUILDSITE_GUILD_IDLE_SECONDS, s.CELERY_BEAT_SCHEDULE['guild-idle-check']['schedule'])"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=60, check=False,
    )


@pytest.mark.parametrize(("value", "expected"), [(None, "3600.0 60.0"), ("120", "120.0 30.0"), ("0", "0.0 60.0")])
def test_the_idle_time_of_guilds_and_how_often_beat_looks(tmp_path, value, expected):
    result = _settings_with(tmp_path, **({"GUILDSITE_GUILD_IDLE_SECONDS": value} if value is not None else {}))

    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == expected.split()


@pytest.mark.parametrize(("variables", "expected"), [
    ({}, "api.openai.com"),
    ({"LLM_BASE_URL": "http://localhost:11434/v1"}, "localhost,api.openai.com"),
    ({"LLM_BASE_URL": "http://localhost:11434/v1", "GUILDSITE_LLM_HOSTS": "llm.internal:8000"}, "llm.internal:8000"),
])
def test_llm_provider_hosts_default_to_the_sites_own_and_openais(tmp_path, variables, expected):
    env = {k: v for k, v in os.environ.items() if k not in {"DATABASE_URL", "REDIS_URL", "DEBUG", "PORT", "LLM_BASE_URL"}}
    env.update(GUILDSITE_VAR_DIR=str(tmp_path), DJANGO_SETTINGS_MODULE="guildsite.settings", **variables)
    result = subprocess.run(
        [sys.executable, "-c", "import django; django.setup(); from django.conf import settings as s; "
                               "print(','.join(s.GUILDSITE_LLM_HOSTS))"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=60, check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == expected
