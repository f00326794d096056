"""Sockets and suspended guilds: a socket keeps its guild up; connecting to a suspended one resumes it
within seed 000's timeouts (10 s to the first report, 15 s to "ok")."""

from __future__ import annotations

import pytest
from asgiref.sync import sync_to_async

from guilds.models import GuildStatus
from tests.runtime.conftest import echo_spec, idle_checks  # noqa: F401 - shared fixtures
from tests.sockets.conftest import REPORT, syscomms, usercomms

pytestmark = pytest.mark.django_db(transaction=True)


def hello(text: str, id: str) -> dict:
    return {"id": id, "format": "text", "payload": {"text": text}, "conversationId": "conv_789",
            "timestamp": "2025-01-15T10:00:00.000Z"}


async def seed_client_says(guild_id: str, text: str) -> dict:
    """Seed 000's client: system socket, its first report, the user socket, "ok", then a message."""
    async with syscomms(guild_id) as system:
        first = await system.receive(timeout=10)
        assert first["format"] == REPORT
        async with usercomms(guild_id) as user:
            await system.until(lambda f: f["format"] == REPORT and f["payload"]["guild_health"] == "ok",
                               timeout=15, what='"ok"')
            await user.send(hello(text, id=text))
            await user.until(lambda f: f["payload"].get("text") == f"Echo: {text}", what="the echo")
    return first


async def suspended(guild) -> bool:
    await sync_to_async(guild.refresh_from_db)()
    return guild.suspended


async def test_a_seed_client_connecting_to_a_suspended_guild_resumes_it_and_gets_report_ok_and_echo(
        running_guild, idle_checks, rig):  # noqa: F811 - pytest fixture injection
    await seed_client_says(running_guild.id, "before")  # the user has a proxy, and the last report says "ok"
    await sync_to_async(idle_checks.wait_suspended)(running_guild)
    suspended_at_ms = running_guild.suspended_at.timestamp() * 1000

    first = await seed_client_says(running_guild.id, "after")

    # Its first report is not the last one from before the suspension (which said "ok" of a proxy not yet
    # back): the suspension's own ("starting"), or the resumed guild's.
    assert first["timestamp"] >= suspended_at_ms
    assert not await suspended(running_guild)
    assert running_guild.status == GuildStatus.RUNNING
    assert await sync_to_async(rig.engine.is_guild_running)(running_guild.id)


async def test_a_guild_with_an_open_socket_is_not_suspended(running_guild, idle_checks, rig):  # noqa: F811
    async with syscomms(running_guild.id) as watcher:
        await watcher.receive(timeout=10)
        # Launched after ours, unused: once it is suspended, ours was looked at as long and longer.
        control = await sync_to_async(rig.create)(echo_spec())
        await sync_to_async(idle_checks.wait_suspended)(control)
        assert not await suspended(running_guild)
        assert await sync_to_async(rig.engine.is_guild_running)(running_guild.id)
    await sync_to_async(idle_checks.wait_suspended)(running_guild)  # closed: idle from then on
