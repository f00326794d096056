"""The runtime's side of outbound webhooks: a finished run or a guild's status change becomes a delivery for each
of the guild's enabled webhooks that asked for that event (and, for a run, its agent), stored, then handed to the
site's sender (guilds.webhooks makes the attempts). A guild without webhooks costs one indexed query."""

from __future__ import annotations

import logging
from typing import Any

from django.db import transaction
from django.utils import timezone

from guilds.models import RunStatus, Webhook, WebhookDelivery, WebhookEvent
from guilds.runtime.store import on_db_threads
from guildsite.public_ids import new_public_id

logger = logging.getLogger(__name__)

RUN_EVENT_OF_STATUS = {RunStatus.SUCCEEDED: WebhookEvent.RUN_SUCCEEDED, RunStatus.FAILED: WebhookEvent.RUN_FAILED}


async def run_finished(*, guild_id: str, run_id: str, agent_id: str, status: str) -> None:
    event = RUN_EVENT_OF_STATUS.get(status)
    if event is not None:
        await _told(guild_id, event, run_id, {"status": status}, agent_id=agent_id)


async def guild_status_changed(*, guild_id: str, status: str, detail: str) -> None:
    await _told(guild_id, WebhookEvent.GUILD_STATUS_CHANGED, guild_id, {"status": status, "status_detail": detail})


async def _told(guild_id: str, event: str, subject_id: str, snapshot: dict[str, Any], agent_id: str = "") -> None:
    try:
        await _record(guild_id, event, subject_id, snapshot, agent_id)
    except Exception:  # what happened stands; only its webhooks are not told (said once per event)
        logger.exception("webhook deliveries of %s could not be recorded", event, extra={"guild_id": guild_id})


@on_db_threads
def _record(guild_id: str, event: str, subject_id: str, snapshot: dict[str, Any], agent_id: str) -> None:
    from guilds.webhooks import deliver_soon

    wanted = [pk for pk, events, only_agent in
              Webhook.objects.filter(guild_id=guild_id, enabled=True).values_list("pk", "events", "agent_id")
              if event in events and (not only_agent or only_agent == agent_id)]
    if not wanted:
        return
    now = timezone.now()
    rows = WebhookDelivery.objects.bulk_create([
        WebhookDelivery(id=new_public_id(), webhook_id=pk, event_type=event, event_id=f"msg_{new_public_id()}",
                        subject_id=subject_id, snapshot=snapshot, next_attempt_at=now)
        for pk in wanted])
    transaction.on_commit(lambda: deliver_soon([row.pk for row in rows]))
