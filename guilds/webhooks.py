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


_NAT64 = (ipaddress.ip_network("64:ff9b::/96"), ipaddress.ip_network("64:ff9b:1::/48"))
_IPV4_COMPATIBLE = ipaddress.ip_network("::/96")


def _refused(address: str) -> bool:
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address):
        if ip in _IPV4_COMPATIBLE:
            return True
        # An IPv4 address inside an IPv6 one reaches that IPv4 host: judged as itself.
        embedded = ip.ipv4_mapped or ip.sixtofour or (ip.teredo[1] if ip.teredo else None)
        if embedded is None and any(ip in network for network in _NAT64):
            embedded = ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
        if embedded is not None:
            ip = embedded
    return not ip.is_global or ip.is_multicast


def public_addresses(host: str, port: int) -> list[str]:
    """The host's addresses, refused (AddressRefused) if any is not public, unless GUILDSITE_WEBHOOK_ALLOW_PRIVATE.
    OSError when the name does not resolve."""
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    addresses = list(dict.fromkeys(info[4][0] for info in infos))
    if not settings.GUILDSITE_WEBHOOK_ALLOW_PRIVATE:
        refused = [address for address in addresses if _refused(address)]
        if refused:
            raise AddressRefused(f"{host} resolves to a private, loopback or link-local address: webhooks go to "
                                 "public addresses (GUILDSITE_WEBHOOK_ALLOW_PRIVATE=1 allows others)")
    return addresses


def url_refusal(url: str) -> str | None:
    """Why a webhook may not be sent to `url` (None: it may)."""
    if not url.isascii():
        return "an ASCII URL (percent-encode the path, give an international host name in its xn-- form)"
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


_ADDRESSES_TRIED = 3


class _DeadlineStream(httpcore2.NetworkStream):
    """A connection whose every read and write ends by one deadline for the whole attempt: a receiver that answers
    a byte at a time cannot hold an attempt past it."""

    def __init__(self, stream: httpcore2.NetworkStream, deadline: float) -> None:
        self._stream, self._deadline = stream, deadline

    def _left(self, timeout: float | None, error: type[Exception]) -> float:
        left = self._deadline - time.monotonic()
        if left <= 0:
            raise error("the attempt ran out of time")
        return left if timeout is None else min(timeout, left)

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        return self._stream.read(max_bytes, self._left(timeout, httpcore2.ReadTimeout))

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        self._stream.write(buffer, self._left(timeout, httpcore2.WriteTimeout))

    def close(self) -> None:
        self._stream.close()

    def start_tls(self, ssl_context: Any, server_hostname: str | None = None,
                  timeout: float | None = None) -> httpcore2.NetworkStream:
        return _DeadlineStream(self._stream.start_tls(ssl_context, server_hostname,
                                                      self._left(timeout, httpcore2.ConnectTimeout)), self._deadline)

    def get_extra_info(self, info: str) -> Any:
        return self._stream.get_extra_info(info)


class _CheckedBackend(httpcore2.SyncBackend):
    """Connects only to the addresses public_addresses allows, resolved here, at connection time: a name cannot
    pass the check at creation and point somewhere private later. TLS still checks the certificate of the name.
    Everything on the connection ends by `deadline` (time.monotonic)."""

    def __init__(self, deadline: float) -> None:
        self._deadline = deadline

    def connect_tcp(self, host: str, port: int, timeout: float | None = None, local_address: str | None = None,
                    socket_options: Iterable[Any] | None = None) -> httpcore2.NetworkStream:
        last_error: Exception | None = None
        for address in public_addresses(host, port)[:_ADDRESSES_TRIED]:
            left = self._deadline - time.monotonic()
            if left <= 0:
                break
            try:
                stream = super().connect_tcp(address, port, timeout=min(timeout or left, left),
                                             local_address=local_address, socket_options=socket_options)
                return _DeadlineStream(stream, self._deadline)
            except httpcore2.ConnectError as exc:
                last_error = exc
        raise last_error or httpcore2.ConnectTimeout(f"no address of {host} answered in time")


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
    """POST the body; the receiver's status code. Its answer's body is not read, redirects are not followed (a 3xx is
    a failure), and the whole attempt ends within GUILDSITE_WEBHOOK_TIMEOUT_SECONDS."""
    timeout = settings.GUILDSITE_WEBHOOK_TIMEOUT_SECONDS
    backend = _CheckedBackend(time.monotonic() + timeout)
    with httpcore2.ConnectionPool(network_backend=backend, max_connections=1) as pool, pool.stream(
            "POST", url, headers={**headers, "content-type": "application/json", "user-agent": "guildsite-webhooks"},
            content=body.encode(), extensions={"timeout": {"connect": timeout, "read": timeout, "write": timeout,
                                                           "pool": timeout}}) as response:
        return response.status


def retry_delay(attempts: int) -> float:
    """Seconds before the attempt after `attempts` failed ones."""
    return settings.GUILDSITE_WEBHOOK_RETRY_BASE_SECONDS * settings.GUILDSITE_WEBHOOK_RETRY_FACTOR ** (attempts - 1)


def attempt_lease() -> timedelta:
    """How long an attempt holds its delivery: past its time-out, so no one else starts one meanwhile."""
    return timedelta(seconds=settings.GUILDSITE_WEBHOOK_TIMEOUT_SECONDS + _LEASE_MARGIN_SECONDS)


def attempt(delivery_id: str) -> float | None:
    """Make the delivery's due attempt, if no one else is making it and its webhook is enabled; the seconds until its
    next one (None: there is none: it succeeded, is dead, or was not due)."""
    now = timezone.now()
    claimed_until = now + attempt_lease()
    # Every condition on the delivery's own row (the webhook's as a subquery, not a join, which Django would turn
    # into a subquery of the whole filter): a second claim waiting on the row lock re-checks them all, and fails.
    claimed = WebhookDelivery.objects.filter(
        pk=delivery_id, status=DeliveryStatus.PENDING, next_attempt_at__lte=now,
        webhook_id__in=Webhook.objects.filter(enabled=True).values("pk")).update(next_attempt_at=claimed_until)
    if not claimed:
        return None
    delivery = WebhookDelivery.objects.select_related("webhook").filter(pk=delivery_id).first()
    if delivery is None:  # its webhook was deleted meanwhile
        return None
    status_code, error, final = None, "", False
    try:
        if not delivery.body:  # made once: every attempt and a redelivery send the same bytes
            delivery.body = delivery_body(delivery)
        headers = signed_headers(unseal(delivery.webhook.sealed_secret), delivery.event_id, delivery.body, time.time())
        status_code = _post(delivery.webhook.url, headers, delivery.body)
        if not 200 <= status_code < 300:
            error = f"the receiver answered {status_code}"
    except (SealBroken, AddressRefused) as exc:  # trying again would not change it
        error, final = str(exc), True
    except (httpcore2.TimeoutException, httpcore2.NetworkError, httpcore2.ProtocolError, OSError) as exc:
        error = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
    except Exception as exc:  # counted like any failed attempt, so it ends dead-lettered, not retried for ever
        logger.exception("a webhook delivery attempt failed unexpectedly", extra={"delivery_id": delivery_id})
        error = f"{type(exc).__name__}: {exc}"
    return _record_attempt(delivery, claimed_until, status_code, error, final)


def _record_attempt(delivery: WebhookDelivery, claimed_until: datetime, status_code: int | None, error: str,
                    final: bool) -> float | None:
    attempts, at = delivery.attempts + 1, timezone.now()
    fields: dict[str, Any] = {"body": delivery.body, "attempts": attempts, "last_attempt_at": at,
                              "last_status_code": status_code, "last_error": error[:_ERROR_MAX_CHARS]}
    delay = None
    if not error:
        fields.update(status=DeliveryStatus.SUCCEEDED, delivered_at=at, next_attempt_at=None)
    elif final or attempts >= settings.GUILDSITE_WEBHOOK_MAX_ATTEMPTS:
        fields.update(status=DeliveryStatus.DEAD, next_attempt_at=None)
        logger.warning("webhook delivery dead-lettered after %d attempt(s): %s", attempts, error,
                       extra={"webhook_id": delivery.webhook_id, "delivery_id": delivery.pk})
    else:
        delay = retry_delay(attempts)
        fields["next_attempt_at"] = at + timedelta(seconds=delay)
    # Only while this attempt still holds the delivery (its lease not taken over, the delivery not deleted).
    recorded = WebhookDelivery.objects.filter(pk=delivery.pk, next_attempt_at=claimed_until).update(**fields)
    return delay if recorded else None


def redeliver(*, delivery: WebhookDelivery) -> WebhookDelivery:
    """The same event (its id and body) again, as a new delivery with attempts of its own."""
    again = WebhookDelivery.objects.create(
        webhook=delivery.webhook, event_type=delivery.event_type, event_id=delivery.event_id,
        subject_id=delivery.subject_id, snapshot=delivery.snapshot, body=delivery.body, redelivery_of=delivery,
        next_attempt_at=timezone.now())
    transaction.on_commit(lambda: deliver_soon([again.pk]))
    return again


def due_ids(*, overdue_seconds: float = 0.0, limit: int = SWEEP_BATCH) -> list[str]:
    """Deliveries of enabled webhooks whose attempt has been due at least `overdue_seconds` and that nothing is
    making (a sender gone mid-attempt leaves its lease to run out; a retry timer lost with its process)."""
    due_by = timezone.now() - timedelta(seconds=overdue_seconds)
    return list(WebhookDelivery.objects.filter(status=DeliveryStatus.PENDING, webhook__enabled=True,
                                               next_attempt_at__lte=due_by)
                .order_by("next_attempt_at").values_list("pk", flat=True)[:limit])


def webhook_resumed(*, webhook: Webhook) -> None:
    """An enabled webhook's deliveries kept pending while it was disabled: due ones are tried now."""
    deliver_soon(list(WebhookDelivery.objects.filter(webhook=webhook, status=DeliveryStatus.PENDING,
                                                     next_attempt_at__lte=timezone.now()).values_list("pk", flat=True)))


# --- who makes the attempts -------------------------------------------------------------------------------------


# A retry further off than this is not a Celery countdown (Redis would hand a message unacknowledged longer than its
# visibility timeout to a worker again); the sweep sends it once it is due.
CELERY_COUNTDOWN_MAX_SECONDS = 30.0
# The sweep leaves deliveries due for less than this to the task or timer already sending them.
SWEEP_OVERDUE_SECONDS = 15.0


def deliver_soon(delivery_ids: list[str], delay: float = 0.0) -> None:
    """Hand the deliveries to the site's sender: a Celery task each (production), or this process's sender thread."""
    if not delivery_ids:
        return
    if settings.GUILDSITE_WEBHOOK_SENDER == "celery":
        if delay > CELERY_COUNTDOWN_MAX_SECONDS:
            return
        from guilds.tasks import webhook_deliver

        for delivery_id in delivery_ids:
            webhook_deliver.apply_async((delivery_id,), countdown=delay or None)
    else:
        local_sender().submit(delivery_ids, delay)


class LocalSender:
    """The embedded default's sender: one thread keeping when each delivery is due, attempts made on a small pool
    (a slow receiver holds one of its threads, never the caller), and a sweep of the table every
    GUILDSITE_WEBHOOK_SWEEP_SECONDS (the first at start)."""

    def __init__(self, workers: int = 4) -> None:
        self._due: list[tuple[float, str]] = []
        self._changed = threading.Condition()
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="guildsite-webhook")
        self._sweeping = threading.Event()
        self._thread = threading.Thread(target=self._run, name="guildsite-webhooks", daemon=True)
        self._thread.start()

    def submit(self, delivery_ids: list[str], delay: float = 0.0) -> None:
        at = time.monotonic() + delay
        with self._changed:
            for delivery_id in delivery_ids:
                heapq.heappush(self._due, (at, delivery_id))
            self._changed.notify()

    def _run(self) -> None:
        next_sweep, overdue = time.monotonic(), 0.0  # the first sweep, at start, takes everything due
        while True:
            with self._changed:
                now = time.monotonic()
                ready = []
                while self._due and self._due[0][0] <= now:
                    ready.append(heapq.heappop(self._due)[1])
                if not ready and now < next_sweep:
                    self._changed.wait(timeout=min(next_sweep, self._due[0][0] if self._due else next_sweep) - now)
                    continue
            if now >= next_sweep:
                every = settings.GUILDSITE_WEBHOOK_SWEEP_SECONDS
                next_sweep = now + (every or 3600.0)
                if every and not self._sweeping.is_set():  # one sweep at a time
                    self._sweeping.set()
                    self._pool.submit(self._sweep, overdue)
                overdue = SWEEP_OVERDUE_SECONDS
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

    def _sweep(self, overdue: float) -> None:
        try:
            self.submit(due_ids(overdue_seconds=overdue))
        except Exception:
            logger.exception("the webhook deliveries sweep failed; the next one tries again")
        finally:
            self._sweeping.clear()
            connections.close_all()


_local_sender: LocalSender | None = None
_local_sender_lock = threading.Lock()


def local_sender() -> LocalSender:
    """This process's sender thread, started on first use."""
    global _local_sender
    with _local_sender_lock:
        if _local_sender is None:
            _local_sender = LocalSender()
        return _local_sender
