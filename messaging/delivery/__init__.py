"""Durable delivery (the Celery engine's agents): inboxes in Redis, leases, wake-ups. See durable.py."""

from messaging.delivery.durable import DurableDelivery, StoreExtension, TaskEnqueue, Waker, Woken
from messaging.delivery.inbox import WAKE_TTL_MS, Batch, Inbox, LeaseLost

__all__ = ["WAKE_TTL_MS", "Batch", "DurableDelivery", "Inbox", "LeaseLost", "StoreExtension", "TaskEnqueue",
           "Waker", "Woken"]
