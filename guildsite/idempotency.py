"""Idempotency keys: the same request sent again with the same `Idempotency-Key` gets the first answer, and
the work is done once.

A key is kept 24 hours per scope (an organisation; a user in development). The first request with a key claims
it (a row with a unique (scope, key)); a second one with the same body waits for the first to finish and gets
its status and body again (with `Idempotent-Replayed: true`); one with a different body is a 409
`idempotency_key_reused`. Only a success is kept: a request that failed may be sent again with its key and is
worked on afresh.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable
from datetime import timedelta
from typing import Any

from django.db import IntegrityError, transaction
from django.db.models import Q
from django.utils import timezone
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter
from rest_framework import exceptions
from rest_framework.request import Request
from rest_framework.response import Response

from guilds.models import IdempotentRequest
from guildsite.errors import Conflict
from guildsite.identity import Actor

HEADER = "Idempotency-Key"
KEY_MAX_CHARS = 255
LIFETIME = timedelta(hours=24)
WAIT_FOR_FIRST_SECONDS = 30.0
ABANDONED_AFTER_SECONDS = 120.0  # a first request still "at work" after this died at it
PURGE_BATCH = 100

PARAMETER = OpenApiParameter(
    HEADER, OpenApiTypes.STR, OpenApiParameter.HEADER,
    description="Sent again with the same key and body within 24 h: the first answer, the work done once "
                "(`Idempotent-Replayed: true`); the same key with another body: 409 `idempotency_key_reused`.")


def scope_of(actor: Actor, organization_id: str | None) -> str:
    """Keys are per organisation; in development (where anyone names any user) per user."""
    if (actor.development and actor.api_key is None) or not organization_id:
        return f"user:{actor.username or '-'}"
    return f"org:{organization_id}"


def idempotent(request: Request, *, scope: str, work: Callable[[], Response]) -> Response:
    """`work()`'s answer, or the first one's when the request carries a key already used for the same request."""
    key = request.headers.get(HEADER)
    if key is None:
        return work()
    if not key or len(key) > KEY_MAX_CHARS or not key.isprintable():
        raise exceptions.ValidationError({HEADER: [f"1-{KEY_MAX_CHARS} printable characters"]})
    fingerprint = _fingerprint(request)
    claim, first = _claim(scope, key, fingerprint)
    if not first:
        return _replay(claim, key, fingerprint)
    try:
        response = work()
    except BaseException:
        claim.delete()
        raise
    if 200 <= response.status_code < 300:
        IdempotentRequest.objects.filter(pk=claim.pk).update(status_code=response.status_code, response=response.data)
    else:
        claim.delete()
    return response


def _fingerprint(request: Request) -> str:
    """The request as the key stands for it: who sends it (another member with the same key and body is another
    request, never handed this one's answer), to which view and object (however the path is spelt), and its body."""
    data: Any = request.data
    if hasattr(data, "dict"):  # a form's QueryDict
        data = data.dict()
    actor = getattr(request, "auth", None)
    who = f"{getattr(request.user, 'pk', None)}/{getattr(getattr(actor, 'api_key', None), 'pk', None)}"
    match = request.resolver_match
    target = (f"{match.view_name} {json.dumps(match.kwargs, sort_keys=True)}" if match is not None
              else request.path)
    body = json.dumps(data, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(f"{who} {request.method} {target}\n{body}".encode()).hexdigest()


def _claim(scope: str, key: str, fingerprint: str) -> tuple[IdempotentRequest, bool]:
    """(the key's row, whether this request made it)."""
    now = timezone.now()
    # Expired, or claimed by a request that never finished (its process died mid-work): the key is free again.
    IdempotentRequest.objects.filter(Q(created_at__lt=now - LIFETIME) | Q(
        status_code__isnull=True, created_at__lt=now - timedelta(seconds=ABANDONED_AFTER_SECONDS)),
        scope=scope, key=key).delete()
    # Every claim takes a few expired keys away with it: the table keeps about a day's keys, without a job of its own.
    expired = IdempotentRequest.objects.filter(created_at__lt=now - LIFETIME).values_list("pk", flat=True)[:PURGE_BATCH]
    IdempotentRequest.objects.filter(pk__in=list(expired)).delete()
    while True:
        try:
            with transaction.atomic():
                return IdempotentRequest.objects.create(scope=scope, key=key, fingerprint=fingerprint,
                                                        created_at=now), True
        except IntegrityError:
            found = IdempotentRequest.objects.filter(scope=scope, key=key).first()
            if found is not None:
                return found, False
            # The first request failed and let its key go just now: this one claims it.


def _replay(claim: IdempotentRequest, key: str, fingerprint: str) -> Response:
    if claim.fingerprint != fingerprint:
        raise Conflict(f"the {HEADER} '{key}' was used for another request; use a new key for this one",
                       code="idempotency_key_reused")
    deadline, pause = time.monotonic() + WAIT_FOR_FIRST_SECONDS, 0.01
    while claim.status_code is None:
        if time.monotonic() > deadline:
            raise Conflict(f"the request with {HEADER} '{key}' is still being worked on; send it again later",
                           code="idempotency_key_in_progress")
        time.sleep(pause)  # the first request with this key is at work: its answer is what this one gets
        pause = min(0.2, pause * 2)
        found = IdempotentRequest.objects.filter(pk=claim.pk).first()
        if found is None:  # the first failed: this one's turn would need the work done again
            raise Conflict(f"the first request with {HEADER} '{key}' failed just now; send this one again",
                           code="idempotency_key_in_progress")
        claim = found
    return Response(claim.response, status=claim.status_code, headers={"Idempotent-Replayed": "true"})
