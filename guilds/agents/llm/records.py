"""An LLM agent's rows: its threads and their messages, and its runs (on the runtime's database threads)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.contrib.auth import get_user_model
from django.db import IntegrityError, transaction
from django.utils import timezone

from guilds.models import (
    SCHEDULE_SENDER_PREFIX,
    TRIGGER_SENDER_PREFIX,
    Guild,
    MessageRole,
    Schedule,
    Thread,
    ThreadMessage,
    Trigger,
)
from guilds.runtime import live
from guilds.runtime.store import on_db_threads

TITLE_CHARS = 80


@dataclass(frozen=True)
class ThreadKey:
    guild_id: str
    agent_id: str
    requester: str
    conversation_id: str  # "" for the requester's default thread
    user_id: str | None  # the requester's user id, when it is a user


@on_db_threads
def thread_open(key: ThreadKey, *, title: str) -> Thread:
    found = Thread.objects.filter(guild_id=key.guild_id, agent_id=key.agent_id, requester=key.requester,
                                  conversation_id=key.conversation_id).first()
    if found is not None:
        return found
    guild = Guild.objects.only("id", "organization_id").get(pk=key.guild_id)
    user = get_user_model().objects.filter(username=key.user_id).first() if key.user_id else None
    try:
        with transaction.atomic():
            return Thread.objects.create(guild=guild, agent_id=key.agent_id, requester=key.requester, user=user,
                                         organization_id=guild.organization_id, conversation_id=key.conversation_id,
                                         title=title[:TITLE_CHARS])
    except IntegrityError:  # another copy of the agent made it just now
        return Thread.objects.get(guild_id=key.guild_id, agent_id=key.agent_id, requester=key.requester,
                                  conversation_id=key.conversation_id)


async def message_add(thread_id: str, *, role: str, content: str, bus_message_id: int | None,
                      run_id: str | None = None, input_tokens: int | None = None, output_tokens: int | None = None,
                      tool_calls: list[dict[str, Any]] | None = None, tool_call_id: str = "",
                      tool_result: dict[str, Any] | None = None) -> ThreadMessage | None:
    """Add a message; the same bus message twice (a redelivery) is kept once. None when the thread is gone: its
    user deleted it while the model answered, and the answer is not kept for a thread they threw away. A new one
    is told to the thread's followers on the live socket."""
    added = await _message_insert(thread_id, role=role, content=content, bus_message_id=bus_message_id, run_id=run_id,
                                  input_tokens=input_tokens, output_tokens=output_tokens, tool_calls=tool_calls,
                                  tool_call_id=tool_call_id, tool_result=tool_result)
    if added is None:
        return None
    message, thread = added
    if thread is not None:
        await live.thread_message_created(thread_id=thread_id, guild_id=thread.guild_id, agent_id=thread.agent_id,
                                          message=as_live(message))
    return message


def as_live(message: ThreadMessage) -> dict[str, Any]:
    """A thread message as GET /api/threads/{id}/messages shows it."""
    return {"id": message.pk, "role": message.role, "content": message.content, "tool_calls": message.tool_calls,
            "tool_call_id": message.tool_call_id, "tool_result": message.tool_result,
            "input_tokens": message.input_tokens, "output_tokens": message.output_tokens,
            "message_id": None if message.bus_message_id is None else str(message.bus_message_id),
            "run_id": message.run_id, "created_at": message.created_at.isoformat()}


@on_db_threads
def _message_insert(thread_id: str, *, role: str, content: str, bus_message_id: int | None, run_id: str | None,
                    input_tokens: int | None, output_tokens: int | None, tool_calls: list[dict[str, Any]] | None,
                    tool_call_id: str, tool_result: dict[str, Any] | None) -> tuple[ThreadMessage, Thread | None] | None:
    """(the message, its thread when the message is new), or None when the thread is gone."""
    if bus_message_id is not None:
        found = ThreadMessage.objects.filter(thread_id=thread_id, role=role, bus_message_id=bus_message_id).first()
        if found is not None:
            return found, None
    try:
        with transaction.atomic():
            thread = Thread.objects.select_for_update().filter(pk=thread_id).only("id", "guild_id", "agent_id").first()
            if thread is None:
                return None
            message = ThreadMessage.objects.create(thread_id=thread_id, role=role, content=content, run_id=run_id,
                                                   bus_message_id=bus_message_id, input_tokens=input_tokens,
                                                   output_tokens=output_tokens, tool_calls=tool_calls,
                                                   tool_call_id=tool_call_id, tool_result=tool_result)
            Thread.objects.filter(pk=thread_id).update(updated_at=timezone.now())
    except IntegrityError:  # deleted between the look and the insert (SQLite takes no row lock)
        return None
    return message, thread


@on_db_threads
def history(thread_id: str, *, before_id: int, limit: int) -> list[dict[str, Any]]:
    """The thread's last `limit` messages before message row `before_id`, oldest first, as the model takes them."""
    if limit <= 0:
        return []
    # The conversation's questions and answers: a tool round in between is the run's own (an assistant's calls
    # with their results), and half of one, cut by the limit, would be refused by a provider.
    rows = list(ThreadMessage.objects.filter(thread_id=thread_id, id__lt=before_id,
                                             role__in=[MessageRole.USER, MessageRole.ASSISTANT], tool_calls__isnull=True)
                .order_by("-id")[:limit])
    return [{"role": row.role, "content": row.content} for row in reversed(rows)]


async def automation_owner(guild_id: str, sender_id: str) -> str | None:
    """Whose thread a schedule's or a trigger's message goes to: its creator's (None: not one of this guild's
    schedules or triggers, or its creator is gone)."""
    for prefix, model in ((SCHEDULE_SENDER_PREFIX, Schedule), (TRIGGER_SENDER_PREFIX, Trigger)):
        if sender_id.startswith(prefix):
            return await _creator(model, guild_id, sender_id.removeprefix(prefix))
    return None


@on_db_threads
def _creator(model: type[Schedule | Trigger], guild_id: str, object_id: str) -> str | None:
    return model.objects.filter(pk=object_id, guild_id=guild_id).values_list("created_by__username", flat=True).first()
