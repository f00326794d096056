"""MessagingConfig: the seeds' shape, aliases of the original system, defaults, typed errors."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from messaging.backends.memory import InMemoryMessagingBackend
from messaging.backends.redis import RedisMessagingBackend
from messaging.config import (
    MessagingConfig,
    create_backend,
    memory_config,
    redis_config,
    resolve_backend_class,
    site_default_config,
)
from messaging.errors import InvalidBackendConfig, UnknownBackend


@pytest.mark.parametrize(
    ("module", "cls", "expected"),
    [
        ("messaging.backends.memory", "InMemoryMessagingBackend", InMemoryMessagingBackend),
        ("messaging.backends.redis", "RedisMessagingBackend", RedisMessagingBackend),
        ("rustic_ai.core.messaging.backend", "InMemoryMessagingBackend", InMemoryMessagingBackend),
        ("rustic_ai.core.messaging.backend", "EmbeddedMessagingBackend", InMemoryMessagingBackend),
        ("rustic_ai.core.messaging.backend.in_memory_backend", "InMemoryMessagingBackend", InMemoryMessagingBackend),
        ("rustic_ai.redis.messaging.backend", "RedisMessagingBackend", RedisMessagingBackend),
    ],
)
def test_accepted_backends(module, cls, expected):
    assert resolve_backend_class(MessagingConfig(backend_module=module, backend_class=cls)) is expected


@pytest.mark.parametrize(
    ("module", "cls"),
    [
        ("os", "system"),
        ("messaging.backends.memory", "RedisMessagingBackend"),
        ("messaging.backends.base", "MessagingBackend"),
        ("rustic_ai.nats.messaging.backend", "NATSMessagingBackend"),
    ],
)
def test_unknown_backends(module, cls):
    with pytest.raises(UnknownBackend) as info:
        resolve_backend_class(MessagingConfig(backend_module=module, backend_class=cls))
    assert "messaging.backends.memory.InMemoryMessagingBackend" in str(info.value)


def test_seed_blueprint_messaging_section_parses():
    config = MessagingConfig.model_validate(
        {
            "backend_module": "rustic_ai.redis.messaging.backend",
            "backend_class": "RedisMessagingBackend",
            "backend_config": {"redis_client": {"host": "localhost", "port": 6379}},
        }
    )
    assert config.is_redis
    backend = create_backend(config)
    assert (backend.host, backend.port) == ("localhost", 6379)


def test_config_rejects_unknown_keys():
    with pytest.raises(ValidationError):
        MessagingConfig.model_validate({"backend_module": "m", "backend_class": "c", "extra": 1})


def test_config_key_shares_aliases_and_separates_options():
    ours = memory_config()
    theirs = MessagingConfig(
        backend_module="rustic_ai.core.messaging.backend", backend_class="InMemoryMessagingBackend"
    )
    assert ours.config_key() == theirs.config_key()
    assert memory_config(max_history=5).config_key() != ours.config_key()
    assert redis_config("redis://a:1/0", key_prefix="x:").config_key() == redis_config(
        "redis://a:1/0", key_prefix="x:"
    ).config_key()


def test_site_default(settings):
    settings.REDIS_URL = None
    assert site_default_config().is_memory
    settings.REDIS_URL = "redis://127.0.0.1:6379/3"
    config = site_default_config()
    assert config.is_redis
    assert config.backend_config == {"url": "redis://127.0.0.1:6379/3"}


def test_bad_backend_config_is_a_typed_error():
    with pytest.raises(InvalidBackendConfig, match="unexpected keyword"):
        create_backend(memory_config(colour="blue"))
    with pytest.raises(InvalidBackendConfig, match="max_history"):
        create_backend(memory_config(max_history=0))
    with pytest.raises(InvalidBackendConfig):
        create_backend(redis_config("http://not-redis"))
    with pytest.raises(InvalidBackendConfig, match="not both"):
        create_backend(
            MessagingConfig(
                backend_module="messaging.backends.redis",
                backend_class="RedisMessagingBackend",
                backend_config={"url": "redis://x", "redis_client": {"host": "y"}},
            )
        )


def test_backend_defaults_come_from_settings(settings):
    settings.GUILDSITE_TOPIC_HISTORY_LIMIT = 77
    settings.GUILDSITE_MESSAGE_TTL_SECONDS = 99
    memory = create_backend(memory_config())
    assert (memory.max_history, memory.message_ttl) == (77, 99)
    redis_backend = create_backend(redis_config("redis://127.0.0.1:6379/0"))
    assert (redis_backend.max_history, redis_backend.message_ttl_ms) == (77, 99_000)


@pytest.mark.parametrize("backend_class", [InMemoryMessagingBackend, RedisMessagingBackend])
def test_a_spec_cannot_make_the_site_keep_more_than_its_limits(settings, backend_class):
    settings.GUILDSITE_TOPIC_HISTORY_LIMIT = 500
    settings.GUILDSITE_MESSAGE_TTL_SECONDS = 3600
    greedy = backend_class(max_history=10**9, message_ttl=10**9)
    modest = backend_class(max_history=20, message_ttl=60)

    def kept_seconds(backend) -> float:
        return backend.message_ttl if isinstance(backend, InMemoryMessagingBackend) else backend.message_ttl_ms / 1000

    assert (greedy.max_history, kept_seconds(greedy)) == (500, 3600)
    assert (modest.max_history, kept_seconds(modest)) == (20, 60)  # less than the site's is a spec's to choose
