"""Typed readers for environment variables.

Settings are the only caller: every value the process takes from its environment
is parsed here, and a malformed value stops start-up with a message naming the
variable instead of surfacing later as a confusing failure.
"""

from __future__ import annotations

import os
from urllib.parse import parse_qs, unquote, urlparse


class ConfigurationError(Exception):
    """An environment variable holds a value guildsite cannot use."""


_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


def env_str(name: str, default: str | None = None) -> str | None:
    value = os.environ.get(name)
    if value is None or value == "":
        return default
    return value


def env_bool(name: str, default: bool) -> bool:
    value = env_str(name)
    if value is None:
        return default
    lowered = value.strip().lower()
    if lowered in _TRUE:
        return True
    if lowered in _FALSE:
        return False
    raise ConfigurationError(f"{name}={value!r} is not a boolean: use one of 1/0, true/false, yes/no, on/off")


def env_int(name: str, default: int, *, minimum: int | None = None, maximum: int | None = None) -> int:
    value = env_str(name)
    if value is None:
        return default
    try:
        number = int(value)
    except ValueError:
        raise ConfigurationError(f"{name}={value!r} is not an integer") from None
    if minimum is not None and number < minimum:
        raise ConfigurationError(f"{name}={number} is below the minimum {minimum}")
    if maximum is not None and number > maximum:
        raise ConfigurationError(f"{name}={number} is above the maximum {maximum}")
    return number


def env_float(name: str, default: float, *, minimum: float | None = None) -> float:
    value = env_str(name)
    if value is None:
        return default
    try:
        number = float(value)
    except ValueError:
        raise ConfigurationError(f"{name}={value!r} is not a number") from None
    if minimum is not None and number < minimum:
        raise ConfigurationError(f"{name}={number} is below the minimum {minimum}")
    return number


def env_list(name: str, default: list[str]) -> list[str]:
    value = env_str(name)
    if value is None:
        return default
    return [item.strip() for item in value.split(",") if item.strip()]


def database_from_url(url: str, *, name: str = "DATABASE_URL", pool_size: int = 0) -> dict:
    """Turn `postgres://user:pass@host:port/db` or `sqlite:///path` into a DATABASES entry: PostgreSQL's connections
    kept a minute per thread, or with `pool_size`, taken from a pool of at most that many."""
    parsed = urlparse(url)
    scheme = parsed.scheme.lower()
    if scheme == "sqlite":
        # sqlite:///relative/path or sqlite:////absolute/path
        path = unquote(parsed.path[1:] if parsed.path.startswith("/") else parsed.path)
        if not path:
            raise ConfigurationError(f"{name}={url!r} names no SQLite file (use sqlite:///var/db.sqlite3)")
        return {"ENGINE": "django.db.backends.sqlite3", "NAME": path}
    if scheme in {"postgres", "postgresql", "pgsql"}:
        if not parsed.path.strip("/"):
            raise ConfigurationError(f"{name}={url!r} names no database (use postgres://host:5432/dbname)")
        options = {key: values[-1] for key, values in parse_qs(parsed.query).items()}
        config = {
            "ENGINE": "django.db.backends.postgresql",
            "NAME": unquote(parsed.path.strip("/")),
            "USER": unquote(parsed.username or ""),
            "PASSWORD": unquote(parsed.password or ""),
            "HOST": parsed.hostname or "",
            "PORT": str(parsed.port or ""),
            "CONN_MAX_AGE": 60,
            "CONN_HEALTH_CHECKS": True,
        }
        if pool_size:
            # A connection goes back to the pool when its request ends (so none is kept per thread); with health
            # checks on, the pool checks it when it is taken again (a database restarted meanwhile).
            config.update(CONN_MAX_AGE=0)
            options["pool"] = {"min_size": 1, "max_size": pool_size, "timeout": 10}
        if options:
            config["OPTIONS"] = options
        return config
    raise ConfigurationError(f"{name}={url!r}: unsupported scheme {scheme!r} (use postgres:// or sqlite:///)")


def redis_url_checked(url: str | None, *, name: str = "REDIS_URL") -> str | None:
    if url is None:
        return None
    parsed = urlparse(url)
    if parsed.scheme not in {"redis", "rediss", "unix"} or not (parsed.hostname or parsed.path):
        raise ConfigurationError(f"{name}={url!r} is not a Redis URL (use redis://host:6379/0)")
    return url
