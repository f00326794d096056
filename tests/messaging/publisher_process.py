"""Run in a separate process by test_redis_backend: publish N messages through the Redis backend.

    python -m tests.messaging.publisher_process <redis url> <key prefix> <namespace> <topic> <count>
"""

from __future__ import annotations

import asyncio
import os
import sys


async def publish(url: str, prefix: str, namespace: str, topic: str, count: int) -> None:
    from messaging.bus import MessagingInterface
    from messaging.config import redis_config
    from messaging.message import Message

    bus = MessagingInterface(namespace, redis_config(url, key_prefix=prefix))
    try:
        for i in range(count):
            message = Message.create(
                sender={"id": "other-process"}, topics=topic, payload={"i": i, "pid": os.getpid()}
            )
            await bus.publish(message)
    finally:
        await bus.shutdown()


def main() -> None:
    url, prefix, namespace, topic, count = sys.argv[1:6]
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "guildsite.settings")
    import django

    django.setup()
    asyncio.run(publish(url, prefix, namespace, topic, int(count)))


if __name__ == "__main__":
    main()
