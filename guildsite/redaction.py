"""A spec's secrets never leave the server: every API, page, admin view and log line shows `"***"`.

Secrets are a Redis `backend_config`'s `password` and `username` (and the password in its `url`),
and anything under a key named like `*secret*`, `*token*`, `*password*` or `*key*` in agent
properties, the guild's own properties, the guild's and agents' dependency maps (a resolver's
`api_key`) and a blueprint's configuration (README "Organisations and permissions"). Names that
count tokens (`max_tokens`) are not credentials and stay visible.

An update that sends `"***"` back where a secret was keeps the stored value, so a client can
round-trip what it read.
"""

from __future__ import annotations

import copy
import re
from typing import Any
from urllib.parse import urlsplit, urlunsplit

MASK = "***"
_SECRET_NAME = re.compile(r"secret|token|password|passwd|key", re.IGNORECASE)
_COUNTS = re.compile(r"tokens$|^key_prefix$", re.IGNORECASE)
_REDIS_CLIENT_SECRETS = ("password", "username")
# Where a spec holds values by name: secret-named ones are masked at any depth (the guild's properties apart).
_NAMED_SECRET_FIELDS = ("dependency_map", "configuration")
_NAMED_SECRET_AGENT_FIELDS = ("properties", "dependency_map")


class SecretNotStored(ValueError):
    """`"***"` was sent back where no secret is stored; `path` says where."""

    def __init__(self, path: str) -> None:
        super().__init__(f"{path}: '{MASK}' stands for a stored secret, but none is stored there; send the value")
        self.path = path


def is_secret_name(name: str) -> bool:
    return bool(_SECRET_NAME.search(name)) and not _COUNTS.search(name)


def _mask_url(url: Any) -> Any:
    if not isinstance(url, str):
        return url
    parts = urlsplit(url)
    if parts.password is None and parts.username is None:
        return url
    host = parts.hostname or ""
    netloc = f"{MASK}:{MASK}@{host}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit(parts._replace(netloc=netloc))


def _mask_named(value: Any) -> Any:
    """Mask the values of secret-named keys, at any depth."""
    if isinstance(value, dict):
        return {k: (MASK if is_secret_name(str(k)) and v not in (None, "") else _mask_named(v)) for k, v in value.items()}
    if isinstance(value, list):
        return [_mask_named(v) for v in value]
    return value


def redact_spec(spec: Any) -> Any:
    """A copy of a guild spec with its secrets masked (anything not a spec is returned as it is)."""
    if not isinstance(spec, dict):
        return spec
    spec = copy.deepcopy(spec)
    properties = spec.get("properties")
    if isinstance(properties, dict):
        messaging = properties.get("messaging")
        masked = {k: v if k == "messaging" else _mask_named({k: v})[k] for k, v in properties.items()}
        if isinstance(messaging, dict) and isinstance(messaging.get("backend_config"), dict):
            config = messaging["backend_config"]
            client = config.get("redis_client")
            if isinstance(client, dict):
                config["redis_client"] = {k: (MASK if k in _REDIS_CLIENT_SECRETS and v not in (None, "") else v)
                                          for k, v in client.items()}
            if "url" in config:
                config["url"] = _mask_url(config["url"])
        spec["properties"] = masked
    for field in _NAMED_SECRET_FIELDS:
        if field in spec:
            spec[field] = _mask_named(spec[field])
    agents = spec.get("agents")
    if isinstance(agents, list):
        spec["agents"] = [
            {**agent, **{field: _mask_named(agent[field]) for field in _NAMED_SECRET_AGENT_FIELDS if field in agent}}
            if isinstance(agent, dict) else agent
            for agent in agents
        ]
    return spec


def refuse_masks(spec: Any, *, prefix: str = "spec") -> None:
    """A new spec has no stored secrets: SecretNotStored for any `"***"` in it."""
    restore_secrets(spec, {}, prefix=prefix)


def redact_agent_spec(agent: Any) -> Any:
    """One agent's spec (as a guild's agent rows keep it), its secrets masked."""
    return redact_spec({"agents": [agent]})["agents"][0] if isinstance(agent, dict) else agent


def _restore(new: Any, stored: Any, path: str) -> Any:
    if new == MASK:
        if stored in (None, MASK):
            raise SecretNotStored(path)
        return stored
    if isinstance(new, str) and isinstance(stored, str) and MASK in new and _mask_url(stored) == new:
        return stored  # a Redis URL read back with its credentials masked
    if isinstance(new, dict):
        base = stored if isinstance(stored, dict) else {}
        return {k: _restore(v, base.get(k), f"{path}.{k}") for k, v in new.items()}
    if isinstance(new, list):
        base = stored if isinstance(stored, list) else []
        return [_restore(v, base[i] if i < len(base) else None, f"{path}.{i}") for i, v in enumerate(new)]
    return new


def restore_secrets(new_spec: Any, stored_spec: Any, *, prefix: str = "spec") -> Any:
    """`new_spec` with every `"***"` replaced by the stored secret at the same place (agents are
    matched by name). SecretNotStored when there is nothing to keep."""
    if not isinstance(new_spec, dict):
        return new_spec
    stored = stored_spec if isinstance(stored_spec, dict) else {}
    stored_agents = {a.get("name"): a for a in stored.get("agents") or [] if isinstance(a, dict)}
    restored = {k: _restore(v, stored.get(k), f"{prefix}.{k}") for k, v in new_spec.items() if k != "agents"}
    if "agents" in new_spec:
        agents = new_spec["agents"]
        restored["agents"] = [
            _restore(agent, stored_agents.get(agent.get("name")) if isinstance(agent, dict) else None, f"{prefix}.agents.{i}")
            for i, agent in enumerate(agents)
        ] if isinstance(agents, list) else agents
    return restored
