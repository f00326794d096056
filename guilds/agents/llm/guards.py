"""Guard rails on what a spec may make the server do with its keys.

A spec names an environment variable (never a key) and a provider URL. Without these checks a blueprint
author could name SECRET_KEY and a server of theirs and receive it as a bearer token. Checked when a spec
is validated (blueprint creation, launch) and again right before each call, in case settings changed.
"""

from __future__ import annotations

from urllib.parse import urlparse

from django.conf import settings


class GuardError(ValueError):
    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


def check_key_env(name: str) -> str:
    allowed = list(settings.GUILDSITE_LLM_KEY_ENVS)
    if name not in allowed:
        raise GuardError("api_key_env", f"'{name}' is not an environment variable this site lets agents use for a key "
                                        f"(GUILDSITE_LLM_KEY_ENVS: {', '.join(allowed) or 'none'})")
    return name


def host_port(url: str) -> tuple[str, int]:
    parsed = urlparse(url)
    if parsed.scheme not in ("http", "https") or not parsed.hostname:
        raise GuardError("base_url", f"'{url}' is not an http(s) URL")
    try:
        port = parsed.port or (443 if parsed.scheme == "https" else 80)
    except ValueError:
        raise GuardError("base_url", f"'{url}' has an invalid port") from None
    return parsed.hostname.lower(), port


def check_base_url(url: str) -> str:
    host, port = host_port(url)
    allowed = [entry.strip().lower() for entry in settings.GUILDSITE_LLM_HOSTS]
    for entry in allowed:
        name, _, entry_port = entry.rpartition(":") if entry.count(":") == 1 else (entry, "", "")
        if (entry_port and name == host and entry_port == str(port)) or (not entry_port and entry == host):
            return url
    raise GuardError("base_url", f"host '{host}:{port}' is not a model provider this site allows "
                                 f"(GUILDSITE_LLM_HOSTS: {', '.join(allowed) or 'none'})")
