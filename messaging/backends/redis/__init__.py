"""The Redis messaging backend (backend.py), its store writer, subscriber and connection options."""

from messaging.backends.redis.backend import RedisMessagingBackend

__all__ = ["RedisMessagingBackend"]
