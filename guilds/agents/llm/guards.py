"""Guard rails on what a spec may make the server do with its keys.

A spec names an environment variable (never a key) and a provider URL, and for tools MCP servers' URLs and
their tokens' variables (`${NAME}`). Without these checks a blueprint
author could name SECRET_KEY and a server of theirs and receive it as a bearer token. Checked when a spec
is validated (blueprint creation, launch) and again right before each call, in case settings changed.
"""

from __future__ import annotations

import os
import re
from urllib.parse import urlparse

from django.conf import settings


class GuardError(ValueError):
    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


def check_key_env(name: str, field: str = "api_key_env") -> str:
    allowed = list(settings.GUILDSITE_LLM_KEY_ENVS)
    if name not in allowed:
        raise GuardError(field, f"'{name}' is not an environment variable this site lets agents use for a key "
                                        f"(GUILDSITE_LLM_KEY_ENVS: {', '.join(allowed) or 'none'})")
    return name


def host_port(url: str, field: str = "base_url") -> tuple[str, int]:
    parsed = urlparse(url)
    if parsed.scheme not in ("http", "https") or not parsed.hostname:
        raise GuardError(field, f"'{url}' is not an http(s) URL")
    try:
        port = parsed.port or (443 if parsed.scheme == "https" else 80)
    except ValueError:
        raise GuardError(field, f"'{url}' has an invalid port") from None
    return parsed.hostname.lower(), port


def _listed(host: str, port: int, entries: list[str]) -> bool:
    """`host` (any port) or `host:port` entries."""
    for entry in (e.strip().lower() for e in entries):
        name, _, entry_port = entry.rpartition(":") if entry.count(":") == 1 else (entry, "", "")
        if (entry_port and name == host and entry_port == str(port)) or (not entry_port and entry == host):
            return True
    return False


def _check_host(url: str, allowed_setting: str, field: str, what: str) -> str:
    host, port = host_port(url, field)
    allowed = list(getattr(settings, allowed_setting))
    if _listed(host, port, allowed):
        return url
    raise GuardError(field, f"host '{host}:{port}' is not {what} this site allows "
                            f"({allowed_setting}: {', '.join(allowed) or 'none'})")


def check_base_url(url: str) -> str:
    return _check_host(url, "GUILDSITE_LLM_HOSTS", "base_url", "a model provider")


def check_mcp_url(url: str) -> str:
    return _check_host(url, "GUILDSITE_MCP_HOSTS", "url", "an MCP server")


TOKEN_REFERENCE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]{0,127})\}")


def check_token_reference(value: str, url: str) -> str:
    """An MCP server's auth_token: `${NAME}` of an environment variable the site lets agents use, never a token
    itself (a spec is shown to everyone who may read its blueprint), and one the site lets go to that server's
    host (GUILDSITE_MCP_TOKEN_HOSTS): else any allowed server could be sent, say, the provider's key."""
    match = TOKEN_REFERENCE.fullmatch(value)
    if match is None:
        raise GuardError("auth_token", "write the token's environment variable as ${NAME}, not the token itself "
                                       "(a spec is readable by whoever reads its blueprint)")
    name = match.group(1)
    check_key_env(name, field="auth_token")
    host, port = host_port(url, "url")
    if not _listed(host, port, list(settings.GUILDSITE_MCP_TOKEN_HOSTS.get(name) or [])):
        raise GuardError("auth_token", f"'{name}' is not a token this site sends to {host}:{port} "
                                       f"(GUILDSITE_MCP_TOKEN_HOSTS)")
    return value


def token_of(reference: str, url: str) -> str:
    """The token `${NAME}` stands for, read now (checked again: settings may have changed)."""
    check_token_reference(reference, url)
    return os.environ.get(TOKEN_REFERENCE.fullmatch(reference).group(1), "")
