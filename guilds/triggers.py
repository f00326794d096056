"""Inbound triggers: a signed HTTP event sends a message to one agent of a guild (seed 004's
`POST /api/triggers/{id}/events`).

An event is checked in a fixed order, each refusal its own status and code (README "Triggers"): unknown trigger,
over its rate, a timestamp that is not an integer or is further than the window from now, a signature that is not
the hex HMAC-SHA256 of `"{timestamp}.{raw body}"` (or of zerg's form: the body as compact JSON with sorted keys),
a disabled trigger, the guild unable to take it, the same event seen within the window, a body that is not JSON.
Then the message goes to the agent from `trigger-{id}`, and its run is made at once.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import re
import secrets
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.core.cache import cache
from django.db import IntegrityError, transaction
from django.utils import timezone

from guilds import services
from guilds.models import GuildStatus, Trigger, TriggerEventSeen
from guildsite import throttle
from guildsite.sealing import SealBroken, seal, unseal
from messaging.errors import PayloadTooLarge

logger = logging.getLogger(__name__)

PAYLOAD_PLACEHOLDER = "{payload}"
TIMESTAMP_HEADER = "X-Zerg-Timestamp"
SIGNATURE_HEADER = "X-Zerg-Signature"
_SEEN_PURGE_BATCH = 1000
_SEEN_PURGE_SECONDS = 1.0
_seen_purged_at = 0.0  # this process's last purge of expired replay rows
_INTEGER = re.compile(r"-?[0-9]{1,19}")  # ASCII digits only (str.isdigit also takes "²")


@dataclass
class EventRefused(Exception):
    status: int
    code: str
    detail: str
    retry_after: int | None = None


def new_secret() -> str:
    return secrets.token_hex(32)


def trigger_create(*, trigger: Trigger) -> str:
    """Store the trigger with a new secret; the secret, to be shown once."""
    secret = new_secret()
    trigger.sealed_secret = seal(secret)
    trigger.save(force_insert=True)
    return secret


def trigger_rotate_secret(*, trigger: Trigger) -> str:
    """A new secret; the one it replaces keeps verifying for GUILDSITE_TRIGGER_ROTATION_GRACE_SECONDS."""
    secret = new_secret()
    with transaction.atomic():
        locked = Trigger.objects.select_for_update().get(pk=trigger.pk)
        locked.sealed_previous_secret = locked.sealed_secret
        locked.previous_secret_expires_at = timezone.now() + timedelta(
            seconds=settings.GUILDSITE_TRIGGER_ROTATION_GRACE_SECONDS)
        locked.sealed_secret = seal(secret)
        locked.save(update_fields=["sealed_secret", "sealed_previous_secret", "previous_secret_expires_at",
                                   "updated_at"])
    trigger.refresh_from_db()
    return secret


def message_text(trigger: Trigger, body_text: str) -> str:
    """What the agent is told: the template with the event's JSON in place of {payload} (plain replacement, so an
    event cannot reach anything else), or the JSON itself."""
    if not trigger.prompt_template:
        return body_text
    return trigger.prompt_template.replace(PAYLOAD_PLACEHOLDER, body_text)


def _timestamp(raw: str | None, now: float) -> int:
    text = (raw or "").strip()
    if not _INTEGER.fullmatch(text):
        raise EventRefused(400, "invalid_timestamp", f"{TIMESTAMP_HEADER} must be an integer of seconds since 1970")
    timestamp = int(text)
    window = settings.GUILDSITE_TRIGGER_WINDOW_SECONDS
    if abs(now - timestamp) > window:
        raise EventRefused(400, "invalid_timestamp", f"{TIMESTAMP_HEADER} is more than {window} s from now")
    return timestamp


def _secrets_of(trigger: Trigger) -> list[str]:
    if trigger.use_site_secret:
        if not settings.TRIGGER_SIGNING_SECRET:
            logger.error("trigger %s verifies with TRIGGER_SIGNING_SECRET, which is not set", trigger.pk)
        return [settings.TRIGGER_SIGNING_SECRET] if settings.TRIGGER_SIGNING_SECRET else []
    sealed = [trigger.sealed_secret]
    if trigger.sealed_previous_secret and trigger.previous_secret_expires_at and \
            trigger.previous_secret_expires_at > timezone.now():
        sealed.append(trigger.sealed_previous_secret)
    opened = []
    for value in sealed:
        try:
            opened.append(unseal(value))
        except SealBroken:
            logger.error("trigger %s: its secret cannot be opened; rotate it", trigger.pk)
    return opened


def _zerg_form(body: bytes) -> bytes | None:
    """The body as zerg signs it: parsed, then compact JSON with sorted keys (None: not JSON)."""
    try:
        return json.dumps(json.loads(body), separators=(",", ":"), sort_keys=True).encode()
    except (ValueError, RecursionError):
        return None


def _signed_forms(body: bytes) -> Iterator[bytes]:
    """The raw body; then, only if that did not match, zerg's form of it."""
    yield body
    zerg = _zerg_form(body)
    if zerg is not None and zerg != body:
        yield zerg


def _verified_form(signature: str | None, timestamp: int, body: bytes, keys: list[str]) -> bytes | None:
    """The form of the body (raw, or zerg's) that the signature signs with one of the keys; None if none."""
    given = (signature or "").strip().lower().removeprefix("sha256=").encode("ascii", "replace")
    if not given or not keys:
        return None
    for form in _signed_forms(body):
        signed = f"{timestamp}.".encode() + form
        # Every key tried, whichever matches: the time taken says nothing of which one did.
        if any([hmac.compare_digest(hmac.new(key.encode(), signed, hashlib.sha256).hexdigest().encode(), given)
                for key in keys]):
            return form
    return None


def _seen_before(trigger_id: str, timestamp: int, digest: str) -> bool:
    """Claim the event (trigger, timestamp, body digest) for the window: True if it was already claimed."""
    window = settings.GUILDSITE_TRIGGER_WINDOW_SECONDS
    if settings.REDIS_URL:
        return not cache.add(f"trigger-seen:{trigger_id}:{timestamp}:{digest}", 1, timeout=2 * window + 1)
    now = timezone.now()
    try:
        with transaction.atomic():
            TriggerEventSeen.objects.create(trigger_id=trigger_id, timestamp=timestamp, body_sha256=digest,
                                            created_at=now)
    except IntegrityError:
        return True
    global _seen_purged_at
    if time.monotonic() - _seen_purged_at >= _SEEN_PURGE_SECONDS:  # now and then, not per event
        _seen_purged_at = time.monotonic()
        stale = (TriggerEventSeen.objects.filter(created_at__lt=now - timedelta(seconds=2 * window + 1))
                 .values_list("pk", flat=True)[:_SEEN_PURGE_BATCH])
        TriggerEventSeen.objects.filter(pk__in=list(stale)).delete()
    return False


def _forget_seen(trigger_id: str, timestamp: int, digest: str) -> None:
    """The event could not be sent: its sender may try it again."""
    if settings.REDIS_URL:
        cache.delete(f"trigger-seen:{trigger_id}:{timestamp}:{digest}")
    else:
        TriggerEventSeen.objects.filter(trigger_id=trigger_id, timestamp=timestamp, body_sha256=digest).delete()


def event_accept(*, trigger_id: str, timestamp_header: str | None, signature_header: str | None,
                 body: bytes) -> dict[str, Any]:
    """Check one event and send it on (the checks in the module's order); {"status": "accepted", "run_id"}.
    Raises EventRefused."""
    trigger = Trigger.objects.select_related("guild").filter(pk=trigger_id).first()
    if trigger is None:
        raise EventRefused(404, "not_found", f"Trigger '{trigger_id}' not found.")
    wait = throttle.over_limit("trigger", trigger.pk, limit=settings.GUILDSITE_TRIGGER_RATE_PER_MINUTE)
    if wait is not None:
        raise EventRefused(429, "throttled", f"over {settings.GUILDSITE_TRIGGER_RATE_PER_MINUTE} events a minute "
                                             f"for this trigger: try again in {wait} s", retry_after=wait)
    now = timezone.now()
    timestamp = _timestamp(timestamp_header, now.timestamp())
    signed = _verified_form(signature_header, timestamp, body, _secrets_of(trigger))
    if signed is None:
        raise EventRefused(403, "invalid_signature", f"{SIGNATURE_HEADER} is not the HMAC-SHA256 of "
                                                     f"'{{timestamp}}.{{body}}' with this trigger's secret")
    if not trigger.enabled:
        raise EventRefused(403, "trigger_disabled", f"trigger {trigger.pk} is disabled")
    guild = trigger.guild
    if guild.status == GuildStatus.STOPPED:
        raise EventRefused(409, "guild_stopped", f"guild {guild.pk} is stopped: its triggers no longer fire")
    if guild.status not in (GuildStatus.RUNNING, GuildStatus.WARNING):
        raise EventRefused(409, "guild_not_ready", f"guild {guild.pk} is {guild.status}: send the event again "
                                                   "once it is RUNNING", retry_after=5)
    # What was signed is the event: a body re-spaced or re-ordered verifies by zerg's form, and is that same event.
    digest = hashlib.sha256(signed).hexdigest()
    if _seen_before(trigger.pk, timestamp, digest):
        raise EventRefused(409, "replayed", "this event (same timestamp and body) was accepted already")
    try:
        body_text = signed.decode("utf-8")  # what was signed is what the agent is told
        json.loads(body_text)
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise EventRefused(400, "parse_error", "the body is not JSON") from None
    try:
        sent, run = services.trigger_event_send(trigger=trigger, text=message_text(trigger, body_text))
    except services.GuildStopped as exc:
        _forget_seen(trigger.pk, timestamp, digest)
        raise EventRefused(409, "guild_stopped", str(exc)) from None
    except PayloadTooLarge as exc:
        raise EventRefused(413, "too_large", f"the event is too large as a message to its agent: {exc}") from None
    except Exception:
        _forget_seen(trigger.pk, timestamp, digest)
        logger.exception("a trigger's event could not be sent", extra={"guild_id": guild.pk, "trigger_id": trigger.pk})
        raise EventRefused(503, "unavailable", "the event could not be sent to its agent: send it again",
                           retry_after=5) from None
    Trigger.objects.filter(pk=trigger.pk).update(last_event_at=now)
    logger.info("trigger event accepted", extra={"guild_id": guild.pk, "trigger_id": trigger.pk,
                                                 "message_id": sent.id, "run_id": run.pk})
    return {"status": "accepted", "run_id": run.pk}
