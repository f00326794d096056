"""The live socket (/api/ws) on the ASGI app: development mode, and rights that end while it is open.
(The protocol and every event against a real server: tests/e2e/test_live_socket.py; who may follow what:
the isolation matrix.)"""

from __future__ import annotations

from datetime import timedelta

import pytest
from asgiref.sync import sync_to_async

from guilds.models import GuildStatus
from guilds.runtime import live
from guilds.runtime import loop as runtime_loop
from guildsite.accounts.models import Membership
from tests import factories
from tests.support.sockets import Socket

pytestmark = pytest.mark.django_db(transaction=True)


def subscribe(topic: str, request_id: str) -> dict:
    return {"v": 1, "id": request_id, "topic": "system", "type": "subscribe", "data": {"topics": [topic]}}


def answer_to(request_id: str):
    return lambda f: f["data"].get("request_id") == request_id


async def test_in_development_a_named_user_joins_their_topic_and_an_unnamed_one_follows_any_guild(settings):
    settings.AUTH_DISABLED = True
    guild = await sync_to_async(factories.guild)("G", org="org-a", user="alice", status=GuildStatus.RUNNING)
    async with Socket("/api/ws?user_id=devuser") as named:
        joined = await named.receive()
        assert (joined["type"], joined["topic"]) == ("subscribe_ack", "user:devuser")
    async with Socket("/api/ws") as unnamed:
        await unnamed.send(subscribe(f"guild:{guild.id}", "r1"))
        answer = await unnamed.until(answer_to("r1"), what="the answer")
        assert answer["type"] == "subscribe_ack"
        assert [f["type"] for f in unnamed.frames] == ["subscribe_ack"]  # no user, so no user topic joined


async def test_a_member_who_leaves_the_organisation_stops_following_its_topics_and_the_socket_stays(settings):
    settings.AUTH_DISABLED = False
    settings.GUILDSITE_WS_RECHECK_SECONDS = 0.1
    guild = await sync_to_async(factories.guild)("G", org="org-a", user="alice", status=GuildStatus.RUNNING)
    await sync_to_async(factories.organization)("org-a", bob="member")
    token = await sync_to_async(factories.token)("bob")
    async with Socket(f"/api/ws?token={token}") as bob:
        await bob.until(lambda f: f["type"] == "subscribe_ack", what="the user topic joined")
        for n, topic in enumerate((f"guild:{guild.id}", "org:org-a")):
            await bob.send(subscribe(topic, f"r{n}"))
            assert (await bob.until(answer_to(f"r{n}"), what=topic))["type"] == "subscribe_ack"
        await sync_to_async(Membership.objects.filter(user__username="bob").delete)()
        dropped = {}
        while len(dropped) < 2:
            frame = await bob.until(lambda f: f["type"] == "subscribe_error" and f["topic"] not in dropped,
                                    what="the topics dropped")
            dropped[frame["topic"]] = frame["data"]["reason"]
        assert dropped == {f"guild:{guild.id}": "not_found", "org:org-a": "not_found"}
        # Still open, still bob's: his own topic is his, the guild is no longer.
        await bob.send(subscribe(f"guild:{guild.id}", "again"))
        assert (await bob.until(answer_to("again"), what="the answer"))["data"]["reason"] == "not_found"
        await bob.send(subscribe("user:bob", "own"))
        assert (await bob.until(answer_to("own"), what="the answer"))["type"] == "subscribe_ack"


async def test_an_expired_token_closes_the_socket_4401(settings):
    settings.AUTH_DISABLED = False
    await sync_to_async(factories.organization)("org-a", bob="member")
    # A JWT's exp is whole seconds (cut down): a 1 s token could have expired before the socket opened.
    token = await sync_to_async(factories.token)("bob", lifetime=timedelta(seconds=3))
    async with Socket(f"/api/ws?token={token}") as bob:
        await bob.until(lambda f: f["type"] == "subscribe_ack", what="the user topic joined")
        error = await bob.until(lambda f: f["type"] == "error", timeout=15, what="the error")
        closing = await bob.communicator.receive_output(timeout=5)
    assert error["data"]["code"] == "UNAUTHENTICATED"
    assert (closing["type"], closing["code"]) == ("websocket.close", 4401)


def run_update(guild, status: str) -> dict:
    return {"run_id": f"run-{guild.pk}-{status}", "guild_id": guild.pk, "organization_id": guild.organization_id,
            "agent_id": "echo", "thread_id": None, "status": status, "trigger": "api", "requester_user": "bob",
            "at": "2026-12-06T00:00:00+00:00"}


async def test_an_api_key_sees_on_its_users_topic_only_the_runs_of_its_organisation(settings):
    settings.AUTH_DISABLED = False
    here = await sync_to_async(factories.guild)("Here", org="org-a", user="bob", status=GuildStatus.RUNNING)
    there = await sync_to_async(factories.guild)("There", org="org-b", user="bob", status=GuildStatus.RUNNING)
    _, key = await sync_to_async(factories.api_key)("org-a", "bob")
    async with Socket(f"/api/ws?token={key}") as socket:
        await socket.until(lambda f: f["type"] == "subscribe_ack", what="the user topic joined")
        await runtime_loop.arun(live.run_update(**run_update(there, "running")))  # bob's, but not the key's org
        await runtime_loop.arun(live.run_update(**run_update(here, "running")))
        seen = await socket.until(lambda f: f["type"] == "run_update", what="a run")
    # Events reach a socket in the order they were published: the first would have come first.
    assert (seen["topic"], seen["data"]["guild_id"]) == ("user:bob", here.pk)


async def test_a_thread_message_too_large_for_an_event_arrives_cut_and_marked(settings):
    settings.AUTH_DISABLED = False
    guild = await sync_to_async(factories.guild)("G", org="org-a", user="bob", status=GuildStatus.RUNNING)
    thread = await sync_to_async(factories.thread)(guild, "bob")
    token = await sync_to_async(factories.token)("bob")
    message = {"id": 1, "role": "tool", "content": "x" * 100_000, "tool_result": {"rows": ["y" * 1000] * 100}}
    async with Socket(f"/api/ws?token={token}") as socket:
        await socket.send(subscribe(f"thread:{thread.pk}", "t"))
        assert (await socket.until(answer_to("t"), what="the answer"))["type"] == "subscribe_ack"
        await runtime_loop.arun(live.thread_message_created(thread_id=thread.pk, guild_id=guild.pk, agent_id="llm",
                                                            message=message))
        event = await socket.until(lambda f: f["type"] == "thread_message_created", what="the event")
    shown = event["data"]["message"]
    assert shown["truncated"] is True
    assert shown["tool_result"] is None
    assert 0 < len(shown["content"]) < 100_000
