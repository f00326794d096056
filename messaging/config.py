"""MessagingConfig (seeds 000 and 002): which backend a guild's bus uses.

`{"backend_module", "backend_class", "backend_config"}` exactly as the seeds write it.
Only the backends under `messaging.backends` can be chosen; the original system's
`rustic_ai…` paths are accepted as aliases. Nothing is ever imported from a path taken
from user input.

backend_config
    memory: `{"max_history": int, "message_ttl": seconds}` (both optional).
    redis:  `{"redis_client": {"host", "port", "ssl", "username", "password", "db"}}` (the
            seed's form) or `{"url": "redis://…"}`, plus optional `message_ttl` (seconds,
            default `GUILDSITE_MESSAGE_TTL_SECONDS`), `max_history` (per topic, default
            `GUILDSITE_TOPIC_HISTORY_LIMIT`) and `key_prefix` (default `gs:`).
"""

from __future__ import annotations

import importlib
import inspect
from typing import TYPE_CHECKING, Any

import orjson
from pydantic import BaseModel, ConfigDict, Field

from messaging.errors import InvalidBackendConfig, UnknownBackend

if TYPE_CHECKING:
    from messaging.backends.base import MessagingBackend

MEMORY_MODULE = "messaging.backends.memory"
MEMORY_CLASS = "InMemoryMessagingBackend"
REDIS_MODULE = "messaging.backends.redis"
REDIS_CLASS = "RedisMessagingBackend"

# (module, class) as written -> (our module, our class).
_BACKENDS: dict[tuple[str, str], tuple[str, str]] = {
    (MEMORY_MODULE, MEMORY_CLASS): (MEMORY_MODULE, MEMORY_CLASS),
    (REDIS_MODULE, REDIS_CLASS): (REDIS_MODULE, REDIS_CLASS),
    # The original system's names.
    ("rustic_ai.core.messaging.backend", "InMemoryMessagingBackend"): (MEMORY_MODULE, MEMORY_CLASS),
    ("rustic_ai.core.messaging.backend", "EmbeddedMessagingBackend"): (MEMORY_MODULE, MEMORY_CLASS),
    ("rustic_ai.core.messaging.backend.in_memory_backend", "InMemoryMessagingBackend"): (MEMORY_MODULE, MEMORY_CLASS),
    ("rustic_ai.core.messaging.backend.in_memory_backend", "EmbeddedMessagingBackend"): (MEMORY_MODULE, MEMORY_CLASS),
    ("rustic_ai.redis.messaging.backend", "RedisMessagingBackend"): (REDIS_MODULE, REDIS_CLASS),
}


class MessagingConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    backend_module: str = Field(min_length=1)
    backend_class: str = Field(min_length=1)
    backend_config: dict[str, Any] = Field(default_factory=dict)

    def canonical(self) -> tuple[str, str]:
        """Our (module, class) for this config; UnknownBackend if it names none of ours."""
        target = _BACKENDS.get((self.backend_module, self.backend_class))
        if target is None:
            accepted = ", ".join(f"{module}.{cls}" for module, cls in _BACKENDS)
            raise UnknownBackend(
                f"unknown messaging backend {self.backend_module}.{self.backend_class}; accepted: {accepted}"
            )
        return target

    def config_key(self) -> str:
        """Equal for configs that should share one backend instance (aliases included)."""
        module, cls = self.canonical()
        options = orjson.dumps(self.backend_config, option=orjson.OPT_SORT_KEYS, default=str).decode()
        return f"{module}.{cls}:{options}"

    @property
    def is_memory(self) -> bool:
        return self.canonical() == (MEMORY_MODULE, MEMORY_CLASS)

    @property
    def is_redis(self) -> bool:
        return self.canonical() == (REDIS_MODULE, REDIS_CLASS)


def memory_config(**backend_config: Any) -> MessagingConfig:
    return MessagingConfig(backend_module=MEMORY_MODULE, backend_class=MEMORY_CLASS, backend_config=backend_config)


def redis_config(url: str, **backend_config: Any) -> MessagingConfig:
    return MessagingConfig(
        backend_module=REDIS_MODULE, backend_class=REDIS_CLASS, backend_config={"url": url, **backend_config}
    )


def site_default_config() -> MessagingConfig:
    """Redis at `settings.REDIS_URL` when it is set, else the in-memory backend."""
    from django.conf import settings

    url = getattr(settings, "REDIS_URL", None)
    return redis_config(url) if url else memory_config()


def resolve_backend_class(config: MessagingConfig) -> type[MessagingBackend]:
    module_name, class_name = config.canonical()
    module = importlib.import_module(module_name)  # only ever one of the modules in _BACKENDS
    return getattr(module, class_name)


def create_backend(config: MessagingConfig) -> MessagingBackend:
    """A new backend instance for `config` (its backend_config passed as keyword arguments)."""
    backend_class = resolve_backend_class(config)
    try:
        inspect.signature(backend_class).bind(**config.backend_config)
    except TypeError as exc:
        raise InvalidBackendConfig(f"backend_config for {backend_class.__name__}: {exc}") from None
    return backend_class(**config.backend_config)
