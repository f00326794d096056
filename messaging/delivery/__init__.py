"""Durable delivery (the Celery engine's agents): inboxes in Redis, leases, wake-ups. See durable.py."""

from messaging.delivery.durable import DrainPush, DurableDelivery, StandIn, StoreExtension, Waker, Woken
from messaging.delivery.inbox import WAKE_TTL_MS, Batch, Inbox, LeaseLost, waiting_counts

__all__ = ["WAKE_TTL_MS", "Batch", "DrainPush", "DurableDelivery", "Inbox", "LeaseLost", "StandIn",
           "StoreExtension", "Waker", "Woken", "waiting_counts"]
