"""Outbound webhooks: a guild's events (`run.succeeded`, `run.failed`, `guild.status_changed`) posted to the URLs
that asked for them, signed with Standard Webhooks headers (`webhook-id`, `webhook-timestamp`,
`webhook-signature`), retried with exponential back-off and dead-lettered after GUILDSITE_WEBHOOK_MAX_ATTEMPTS.

Each event is a WebhookDelivery row per webhook (guilds.runtime.outbound records them), so nothing said is lost
with a process. An attempt claims its row (a conditional update moving `next_attempt_at` past the attempt's
time-out), so two senders never post one attempt twice. Attempts run in a Celery task in production and on a
sender thread of the web process on the embedded default: never on the path of a run.
"""

from __future__ import annotations

import base64
import heapq
import ipaddress
import logging
import secrets
import socket
import threading
import time
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

import httpcore2
import orjson
from django.conf import settings
from django.db import connections, transaction
from django.utils import timezone
from standardwebhooks.webhooks import Webhook as StandardWebhook

from guilds.models import DeliveryStatus, Guild, Run, Webhook, WebhookDelivery, WebhookEvent
from guildsite.public_ids import new_public_id
from guildsite.sealing import SealBroken, seal, unseal

logger = logging.getLogger(__name__)

SECRET_PREFIX = "whsec_"
RUN_EVENTS = frozenset({WebhookEvent.RUN_SUCCEEDED, WebhookEvent.RUN_FAILED})
_LEASE_MARGIN_SECONDS = 30.0
_ERROR_MAX_CHARS = 500
SWEEP_BATCH = 500


def new_secret() -> str:
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(32)).decode()


def new_event_id() -> str:
    return f"msg_{new_public_id()}"


def webhook_create(*, webhook: Webhook) -> str:
    """Store the webhook with a new secret; the secret, to be shown once."""
    secret = new_secret()
    webhook.sealed_secret = seal(secret)
    webhook.save(force_insert=True)
    return secret


# --- where a delivery may go ----------------------------------------------------------------------------------


class AddressRefused(Exception):
    """The receiver's address is private, loopback, link-local or otherwise not on the public internet."""


def _refused(address: str) -> bool:
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return not ip.is_global or ip.is_multicast


def public_addresses(host: str, port: int) -> list[str]:
    """The host's addresses, refused (AddressRefused) if any is not public, unless GUILDSITE_WEBHOOK_ALLOW_PRIVATE.
    OSError when the name does not resolve."""
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    addresses = list(dict.fromkeys(info[4][0] for info in infos))
    if not settings.GUILDSITE_WEBHOOK_ALLOW_PRIVATE:
        refused = [address for address in addresses if _refused(address)]
        if refused:
            raise AddressRefused(f"{host} resolves to {refused[0]}, a private, loopback or link-local address: "
                                 "webhooks go to public addresses (GUILDSITE_WEBHOOK_ALLOW_PRIVATE=1 allows others)")
    return addresses


def url_refusal(url: str) -> str | None:
    """Why a webhook may not be sent to `url` (None: it may)."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return "an http or https URL with a host"
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError:
        return "the port is not a number from 0 to 65535"
    try:
        public_addresses(parts.hostname, port)
    except AddressRefused as exc:
        return str(exc)
    except (OSError, UnicodeError):
        return f"{parts.hostname} does not resolve"
    return None


class _CheckedBackend(httpcore2.SyncBackend):
    """Connects only to the addresses public_addresses allows, resolved here, at connection time: a name cannot
    pass the check at creation and point somewhere private later. TLS still checks the certificate of the name."""

    def connect_tcp(self, host: str, port: int, timeout: float | None = None, local_address: str | None = None,
                    socket_options: Iterable[Any] | None = None) -> httpcore2.NetworkStream:
        last_error: Exception | None = None
        for address in public_addresses(host, port):
            try:
                return super().connect_tcp(address, port, timeout=timeout, local_address=local_address,
                                           socket_options=socket_options)
            except httpcore2.ConnectError as exc:
                last_error = exc
        raise last_error or httpcore2.ConnectError(f"{host} has no address")


# --- one attempt ------------------------------------------------------------------------------------------------


def _event_data(delivery: WebhookDelivery) -> dict[str, Any]:
    """The run or the guild as the REST API shows it (the guild's status as the event saw it)."""
    from guilds.api.runs import RunSerializer  # the API's own shape, made once per delivery
    from guilds.api.serializers import GuildSummarySerializer

    if delivery.event_type in RUN_EVENTS:
        run = Run.objects.filter(pk=delivery.subject_id).first()
        return RunSerializer(run).data if run is not None else {"id": delivery.subject_id, **delivery.snapshot}
    guild = Guild.objects.select_related("launched_by").filter(pk=delivery.subject_id).first()
    data = GuildSummarySerializer(guild).data if guild is not None else {"id": delivery.subject_id}
    return {**data, **delivery.snapshot}


def delivery_body(delivery: WebhookDelivery) -> str:
    return orjson.dumps({"type": delivery.event_type, "id": delivery.event_id,
                         "created_at": delivery.created_at.isoformat(), "data": _event_data(delivery)}).decode()


def signed_headers(secret: str, event_id: str, body: str, at: float) -> dict[str, str]:
    signature = StandardWebhook(secret).sign(event_id, datetime.fromtimestamp(at, tz=UTC), body)
    return {"webhook-id": event_id, "webhook-timestamp": str(int(at)), "webhook-signature": signature}


def _post(url: str, headers: dict[str, str], body: str) -> int:
    """POST the body; the receiver's status code (redirects are not followed: a 3xx is a failure)."""
    timeout = settings.GUILDSITE_WEBHOOK_TIMEOUT_SECONDS
    with httpcore2.ConnectionPool(network_backend=_CheckedBackend(), max_connections=1) as pool:
        response = pool.request("POST", url, headers={**headers, "content-type": "application/json",
                                                      "user-agent": "guildsite-webhooks"},
                                content=body.encode(), extensions={"timeout": {
                                    "connect": timeout, "read": timeout, "write": timeout, "pool": timeout}})
        return response.status


def retry_delay(attempts: int) -> float:
    """Seconds before the attempt after `attempts` failed ones."""
    return settings.GUILDSITE_WEBHOOK_RETRY_BASE_SECONDS * settings.GUILDSITE_WEBHOOK_RETRY_FACTOR ** (attempts - 1)


def attempt(delivery_id: str) -> float | None:
    """Make the delivery's due attempt, if no one else is making it; the seconds until its next one (None: there
    is none: it succeeded, is dead, or was not due)."""
    now = timezone.now()
    lease = timedelta(seconds=settings.GUILDSITE_WEBHOOK_TIMEOUT_SECONDS * 4 + _LEASE_MARGIN_SECONDS)
    claimed = WebhookDelivery.objects.filter(pk=delivery_id, status=DeliveryStatus.PENDING,
                                             next_attempt_at__lte=now).update(next_attempt_at=now + lease)
    if not claimed:
        return None
    delivery = WebhookDelivery.objects.select_related("webhook").get(pk=delivery_id)
    webhook = delivery.webhook
    if not delivery.body:  # made once: every attempt and a redelivery send the same bytes
        delivery.body = delivery_body(delivery)
    status_code, error, final = None, "", False
    if not webhook.enabled:
        error, final = "the webhook is disabled", True
    else:
        try:
            headers = signed_headers(unseal(webhook.sealed_secret), delivery.event_id, delivery.body, time.time())
            status_code = _post(webhook.url, headers, delivery.body)
            if not 200 <= status_code < 300:
                error = f"the receiver answered {status_code}"
        except SealBroken as exc:
            error, final = str(exc), True
        except AddressRefused as exc:
            error, final = str(exc), True
        except (httpcore2.TimeoutException, httpcore2.NetworkError, httpcore2.ProtocolError, OSError,
                UnicodeError) as exc:
            error = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
    delivery.attempts += 1
    delivery.last_attempt_at, delivery.last_status_code = timezone.now(), status_code
    delivery.last_error = error[:_ERROR_MAX_CHARS]
    delay = None
    if not error:
        delivery.status, delivery.delivered_at, delivery.next_attempt_at = (DeliveryStatus.SUCCEEDED,
                                                                            delivery.last_attempt_at, None)
    elif final or delivery.attempts >= settings.GUILDSITE_WEBHOOK_MAX_ATTEMPTS:
        delivery.status, delivery.next_attempt_at = DeliveryStatus.DEAD, None
        logger.warning("webhook delivery dead-lettered after %d attempt(s): %s", delivery.attempts, error,
                       extra={"webhook_id": webhook.pk, "delivery_id": delivery.pk})
    else:
        delay = retry_delay(delivery.attempts)
        delivery.next_attempt_at = delivery.last_attempt_at + timedelta(seconds=delay)
    delivery.save(update_fields=["body", "attempts", "last_attempt_at", "last_status_code", "last_error", "status",
                                 "delivered_at", "next_attempt_at"])
    return delay


def redeliver(*, delivery: WebhookDelivery) -> WebhookDelivery:
    """The same event (its id and body) again, as a new delivery with attempts of its own."""
    again = WebhookDelivery.objects.create(
        webhook=delivery.webhook, event_type=delivery.event_type, event_id=delivery.event_id,
        subject_id=delivery.subject_id, snapshot=delivery.snapshot, body=delivery.body, redelivery_of=delivery,
        next_attempt_at=timezone.now())
    transaction.on_commit(lambda: deliver_soon([again.pk]))
    return again


def due_ids(limit: int = SWEEP_BATCH) -> list[str]:
    """Deliveries whose attempt is due and that nothing is making (a sender gone mid-attempt leaves its lease to
    run out; a retry task or timer lost with its process)."""
    return list(WebhookDelivery.objects.filter(status=DeliveryStatus.PENDING, next_attempt_at__lte=timezone.now())
                .order_by("next_attempt_at").values_list("pk", flat=True)[:limit])


# --- who makes the attempts -------------------------------------------------------------------------------------


def deliver_soon(delivery_ids: list[str], delay: float = 0.0) -> None:
    """Hand the deliveries to the site's sender: a Celery task each (production), or this process's sender thread."""
    if not delivery_ids:
        return
    if settings.GUILDSITE_WEBHOOK_SENDER == "celery":
        from guilds.tasks import webhook_deliver

        for delivery_id in delivery_ids:
            webhook_deliver.apply_async((delivery_id,), countdown=delay or None)
    else:
        local_sender().submit(delivery_ids, delay)


class LocalSender:
    """The embedded default's sender: one thread keeping when each delivery is due, attempts made on a small pool
    (a slow receiver holds one of its threads, never the caller), and a sweep of the table now and then."""

    SWEEP_SECONDS = 30.0

    def __init__(self, workers: int = 4) -> None:
        self._due: list[tuple[float, str]] = []
        self._changed = threading.Condition()
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="guildsite-webhook")
        self._thread = threading.Thread(target=self._run, name="guildsite-webhooks", daemon=True)
        self._thread.start()

    def submit(self, delivery_ids: list[str], delay: float = 0.0) -> None:
        at = time.monotonic() + delay
        with self._changed:
            for delivery_id in delivery_ids:
                heapq.heappush(self._due, (at, delivery_id))
            self._changed.notify()

    def _run(self) -> None:
        next_sweep = time.monotonic()
        while True:
            with self._changed:
                now = time.monotonic()
                ready = []
                while self._due and self._due[0][0] <= now:
                    ready.append(heapq.heappop(self._due)[1])
                if not ready and now < next_sweep:
                    wait = min(next_sweep, self._due[0][0] if self._due else next_sweep) - now
                    self._changed.wait(timeout=wait)
                    continue
            if now >= next_sweep:
                next_sweep = now + self.SWEEP_SECONDS
                self._pool.submit(self._sweep)
            for delivery_id in ready:
                self._pool.submit(self._attempt, delivery_id)

    def _attempt(self, delivery_id: str) -> None:
        try:
            delay = attempt(delivery_id)
        except Exception:
            logger.exception("a webhook delivery attempt failed; the sweep tries it again",
                             extra={"delivery_id": delivery_id})
            return
        finally:
            connections.close_all()  # this thread's: attempts are few, and an idle sender holds no session
        if delay is not None:
            self.submit([delivery_id], delay)

    def _sweep(self) -> None:
        try:
            ids = due_ids()
        except Exception:
            logger.exception("the webhook deliveries sweep failed; the next one tries again")
            return
        finally:
            connections.close_all()
        for delivery_id in ids:
            self._attempt(delivery_id)


_local_sender: LocalSender | None = None
_local_sender_lock = threading.Lock()


def local_sender() -> LocalSender:
    """This process's sender thread, started on first use."""
    global _local_sender
    with _local_sender_lock:
        if _local_sender is None:
            _local_sender = LocalSender()
        return _local_sender
