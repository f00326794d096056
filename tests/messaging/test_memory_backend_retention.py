"""The in-memory backend forgets a message once no topic's history holds it (no 7-day by-id leak)."""

from __future__ import annotations

from messaging.backends.memory import _STORE, InMemoryMessagingBackend, reset_memory_store
from messaging.message import Message


async def test_by_id_records_follow_the_topic_history_limit():
    reset_memory_store()
    backend = InMemoryMessagingBackend(max_history=10)
    ids = []
    for i in range(500):
        message = Message.create(sender={"id": "a"}, topics="t", payload={"i": i})
        ids.append(message.id)
        await backend.store_message("leakns", ["leakns:t", "leakns:u"] if i == 0 else ["leakns:t"], message)
    kept = [key for key in _STORE.messages if key[0] == "leakns"]
    assert len(kept) == 11  # the last 10, and the first one, still held by topic u
    assert [m.id for m in await backend.get_messages_by_id("leakns", [ids[0], ids[5], ids[-1]])] == [ids[0], ids[-1]]


async def test_a_topic_holds_the_bytes_of_its_history_only():
    # Large messages (health reports of a big guild) past the limit must not wait for a compaction.
    reset_memory_store()
    backend = InMemoryMessagingBackend(max_history=10)
    for i in range(600):
        message = Message.create(sender={"id": "a"}, topics="t", payload={"report": "x" * 10_000, "i": i})
        await backend.store_message("bigns", ["bigns:t"], message)
    held = sum(len(entry.json) for entry in _STORE.topics["bigns:t"].entries)
    assert held < 11 * 10_500
    assert [m.payload["i"] for m in await backend.get_messages_for_topic("bigns:t")] == list(range(590, 600))
