"""The seed's sockets at the consumer level: every frame as seed 000 writes it."""

from __future__ import annotations

import json

import pytest
from channels.testing import WebsocketCommunicator

from guilds.models import Guild, GuildStatus
from guilds.runtime import formats
from guildsite.asgi import application
from messaging import topics as topic_names
from tests.runtime.conftest import echo_spec
from tests.sockets.conftest import REPORT, syscomms, usercomms

pytestmark = pytest.mark.django_db(transaction=True)

ERROR = "rustic_ai.core.agents.commons.message_formats.ErrorMessage"


def hello(text: str = "Hello Echo!", **extra) -> dict:
    """Seed 000 §5.1's text frame, verbatim but for the text."""
    return {"id": "msg123", "format": "text", "payload": {"text": text},
            "sender": {"id": "testuser123", "name": "Test User"}, "conversationId": "conv_789",
            "timestamp": "2025-01-15T10:00:00.000Z", **extra}


async def test_the_seed_flow_health_then_user_then_echo_then_participants_then_stop(running_guild):
    gid = running_guild.id
    async with syscomms(gid) as system:
        first = await system.receive(timeout=2)
        assert first["format"] == REPORT
        assert first["payload"]["guild_health"] == "starting"  # this user's proxy is not up yet
        async with usercomms(gid) as user:
            ready = await system.until(lambda f: f["format"] == REPORT and f["payload"]["guild_health"] == "ok",
                                       what="guild_health ok")
            assert "upa-testuser123" in ready["payload"]["agents"]
            await system.send({"format": "participantsRequest", "payload": {"guild_id": gid},
                               "sender": {"id": "testuser123"}, "timestamp": "2025-01-15T10:00:00.000Z",
                               "conversationId": "conv_123"})
            participants = await system.until(lambda f: f["format"] == "Participants")
            assert {"id": "upa-testuser123", "name": "Test User", "type": "human"} in participants["payload"]["participants"]
            assert any(p["name"] == "EchoAgent" and p["type"] == "bot" for p in participants["payload"]["participants"])

            await user.send(hello())
            echo = await user.until(lambda f: f["payload"].get("text") == "Echo: Hello Echo!", what="the echo")
            own = await user.until(lambda f: f.get("client_message_id") == "msg123", what="own message confirmed")
            # Seed 000 §5.2's shape, ids as strings.
            assert {"id", "format", "payload", "sender", "topics", "timestamp", "thread", "in_response_to",
                    "priority"} <= set(echo)
            assert echo["format"] == "text"
            assert echo["priority"] == 4
            assert echo["sender"]["name"] == "EchoAgent"
            assert echo["topics"] == ["user:testuser123:notifications"]
            assert echo["in_response_to"] == own["id"]
            assert echo["thread"] == [own["id"], echo["id"]]
            assert isinstance(echo["id"], str)
            assert isinstance(echo["timestamp"], int)
            assert echo["conversation_id"] == "conv_789"

            await system.send({"format": "stopGuildRequest", "payload": {"guild_id": gid},
                               "sender": {"id": "testuser123"}})
            await system.until(lambda f: f["format"] == "guildStatus" and f["payload"]["status"] == "STOPPED")
            await system.until(lambda f: f["format"].endswith("StopGuildResponse"))
            refused = await first_refusal_after_the_stop(user)
            assert refused["payload"]["error_type"] == "GUILD_STOPPED"
    refused_socket = WebsocketCommunicator(application, f"/ws/guilds/{gid}/usercomms/testuser123/Test%20User")
    await refused_socket.connect()
    frame = json.loads(await refused_socket.receive_from())
    assert frame["format"] == ERROR
    assert "stopped" in frame["payload"]["error_message"]
    assert (await refused_socket.receive_output())["code"] == 4410


async def first_refusal_after_the_stop(user) -> dict:
    """The user socket learns of the stop from the guild's events, just after the system socket: a frame
    sent meanwhile may still be taken (it reaches no agent). Ask until the socket refuses."""
    for attempt in range(50):
        await user.send(hello("anyone?", id=f"after-stop-{attempt}"))
        try:
            return await user.until(lambda f, a=attempt: f["format"] == ERROR and
                                    f.get("client_message_id") == f"after-stop-{a}", timeout=0.2)
        except AssertionError:
            continue  # taken before the socket knew: ask again
    raise AssertionError("the user socket never refused a frame after the stop")


async def test_the_original_systems_qualified_formats_work_too(running_guild):
    gid = running_guild.id
    async with usercomms(gid) as user, syscomms(gid) as system:
        await system.send({"format": "rustic_ai.core.agents.utils.user_proxy_agent.ParticipantListRequest",
                           "payload": {"guild_id": gid}})
        await system.until(lambda f: f["format"] == "Participants")
        await user.send({"format": "rustic_ai.core.ui_protocol.types.TextFormat", "payload": {"text": "typed"}})
        echo = await user.until(lambda f: f["payload"].get("text") == "Echo: typed")
        assert echo["format"] == "rustic_ai.core.ui_protocol.types.TextFormat"
        await user.send({"format": "rustic_ai.core.ui_protocol.types.FilesWithTextFormat",
                         "payload": {"files": [{"name": "document.pdf", "url": "/files/document.pdf"}],
                                     "text": "Here's the document you requested", "tagged_users": []},
                         "sender": {"id": "testuser123", "name": "Test User"}})
        files = await user.until(lambda f: f["format"].endswith("FilesWithTextFormat") and f["sender"]["name"] == "EchoAgent")
        assert files["payload"]["files"][0]["name"] == "document.pdf"


async def test_unknown_guild_is_refused_with_a_documented_close_code(running_guild):
    communicator = WebsocketCommunicator(application, "/ws/guilds/nope/syscomms/testuser123")
    await communicator.connect()
    frame = json.loads(await communicator.receive_from())
    assert frame["format"] == ERROR
    assert "does not exist" in frame["payload"]["error_message"]
    assert (await communicator.receive_output())["code"] == 4404


async def test_bad_frames_get_error_frames_and_the_socket_stays_usable(running_guild, settings):
    settings.GUILDSITE_WS_FRAME_MAX_BYTES = 2048
    async with usercomms(running_guild.id) as user:
        await user.send("invalid json: something")
        assert (await user.until(lambda f: f["format"] == ERROR))["payload"]["error_type"] == "INVALID_JSON"
        user.frames.clear()
        await user.send({"format": "no.such.format", "payload": {"x": 1}, "id": "abc"})
        error = await user.until(lambda f: f["format"] == ERROR)
        assert error["payload"]["error_type"] == "UNKNOWN_FORMAT"
        assert error["client_message_id"] == "abc"
        user.frames.clear()
        await user.send(hello("x" * 4096))
        assert (await user.until(lambda f: f["format"] == ERROR))["payload"]["error_type"] == "PAYLOAD_TOO_LARGE"
        user.frames.clear()
        await user.send({"test": "invalid"})
        assert (await user.until(lambda f: f["format"] == ERROR))["payload"]["error_type"] == "INVALID_FRAME"
        await user.send(hello("still fine"))
        await user.until(lambda f: f["payload"].get("text") == "Echo: still fine")


async def test_a_flooding_client_is_throttled_with_errors_and_nothing_accepted_is_lost(running_guild, settings):
    settings.GUILDSITE_WS_RATE_PER_SECOND = 1
    settings.GUILDSITE_WS_RATE_BURST = 5
    async with usercomms(running_guild.id) as user:
        for n in range(12):
            await user.send(hello(f"flood {n}", id=f"flood-{n}"))
        # Every frame is answered: refused (RATE_LIMITED) or taken (its own message comes back).
        answers: dict[str, dict] = {}
        while len(answers) < 12:
            frame = await user.until(lambda f: (f.get("client_message_id") or "").startswith("flood-")
                                     and f["client_message_id"] not in answers, what="an answer to each frame")
            answers[frame["client_message_id"]] = frame
        limited = [n for n, f in answers.items() if f["format"] == ERROR]
        taken = [f["payload"]["text"] for f in answers.values() if f["format"] != ERROR]
        assert all(answers[n]["payload"]["error_type"] == "RATE_LIMITED" for n in limited)
        assert len(taken) >= 5  # the burst
        for text in taken:  # and each one taken is echoed, once
            await user.until(lambda f, t=text: f["payload"].get("text") == f"Echo: {t}", what=f"the echo of {text}")
        echoes = [f["payload"]["text"] for f in user.frames if f["payload"].get("text", "").startswith("Echo: flood")]
        assert sorted(echoes) == sorted(f"Echo: {t}" for t in taken)


async def test_a_user_who_reconnects_gets_what_they_missed_once_in_order(running_guild, settings):
    gid = running_guild.id
    async with usercomms(gid) as user:
        await user.send(hello("one"))
        first_echo = await user.until(lambda f: f["payload"].get("text") == "Echo: one")
    async with usercomms(gid, user_id="testuser123") as other_tab:  # keeps the proxy busy while the first is away
        await other_tab.send(hello("two"))
        await other_tab.until(lambda f: f["payload"].get("text") == "Echo: two")
        await other_tab.send(hello("three"))
        await other_tab.until(lambda f: f["payload"].get("text") == "Echo: three")
    async with usercomms(gid, query=f"?last_seen_id={first_echo['id']}") as back:
        await back.until(lambda f: f["payload"].get("text") == "Echo: three")
        while not await back.nothing(0.3):
            await back.receive()
        texts = [f["payload"]["text"] for f in back.frames]
        assert texts == ["two", "Echo: two", "three", "Echo: three"]
    settings.GUILDSITE_WS_HISTORY_ON_CONNECT = 2
    async with usercomms(gid) as fresh:
        await fresh.until(lambda f: f["payload"].get("text") == "Echo: three")
        while not await fresh.nothing(0.3):
            await fresh.receive()
        assert [f["payload"]["text"] for f in fresh.frames] == ["three", "Echo: three"]


async def test_two_tabs_of_one_user_both_receive_the_users_notifications(running_guild):
    gid = running_guild.id
    async with usercomms(gid) as tab1, usercomms(gid) as tab2:
        await tab1.send(hello("to both"))
        await tab1.until(lambda f: f["payload"].get("text") == "Echo: to both")
        await tab2.until(lambda f: f["payload"].get("text") == "Echo: to both")
        await tab2.until(lambda f: f["payload"].get("text") == "to both")


async def test_the_server_assigns_ids_and_keeps_users_below_the_guilds_own_priorities(running_guild):
    async with usercomms(running_guild.id) as user:
        await user.send(hello("numbered", id="382893337144800256"))
        own = await user.until(lambda f: f.get("client_message_id") == "382893337144800256")
        assert own["id"] != "382893337144800256"  # a client cannot choose (and so collide with) a message id
        await user.send(hello("urgent!", priority=0))
        error = await user.until(lambda f: f["format"] == ERROR)
        assert error["payload"]["error_type"] == "INVALID_FRAME"
        assert "4 (normal)" in error["payload"]["error_message"]


async def test_only_a_member_may_stop_the_guild(running_guild):
    async with syscomms(running_guild.id, user_id="stranger") as stranger:
        await stranger.send({"format": "stopGuildRequest", "payload": {"guild_id": running_guild.id}})
        error = await stranger.until(lambda f: f["format"] == ERROR)
        assert error["payload"]["error_type"] == "FORBIDDEN"


async def test_a_watcher_without_a_user_socket_hears_ok_once_its_grace_is_over(running_guild, settings):
    settings.GUILDSITE_WATCHER_GRACE_SECONDS = 0.5
    async with syscomms(running_guild.id) as watcher:
        first = await watcher.receive(timeout=2)
        assert first["format"] == REPORT
        assert first["payload"]["guild_health"] == "starting"  # the seed's client may still open its user socket
        ok = await watcher.until(lambda f: f["format"] == REPORT and f["payload"]["guild_health"] == "ok",
                                 timeout=5, what="guild_health ok for a watcher")
        assert ok["payload"]["guild_status"] == "RUNNING"
        assert "upa-testuser123" not in ok["payload"]["agents"]  # no proxy was made for the watcher


async def test_once_a_watcher_opens_a_user_socket_ok_waits_for_its_proxy(running_guild, settings):
    settings.GUILDSITE_WATCHER_GRACE_SECONDS = 0.2
    async with syscomms(running_guild.id) as system:
        await system.until(lambda f: f["format"] == REPORT and f["payload"]["guild_health"] == "ok",
                           timeout=5, what="guild_health ok for a watcher")
        async with usercomms(running_guild.id):
            # Frames after this answer were sent after the user socket opened (earlier ones may be in flight).
            await system.send({"format": "participantsRequest", "payload": {"guild_id": running_guild.id}})
            await system.until(lambda f: f["format"] == "Participants")
            after_open = len(system.frames)
            await system.until(lambda f: f["format"] == REPORT
                               and f["payload"]["agents"].get("upa-testuser123", {}).get("checkstatus") == "ok",
                               what="a report with the user's proxy up")
            for report in system.frames[after_open:]:
                if report["format"] == REPORT and report["payload"]["guild_health"] == "ok":
                    assert report["payload"]["agents"]["upa-testuser123"]["checkstatus"] == "ok"


async def test_a_report_lists_the_guilds_agents_and_the_users_own_proxy_not_other_users(running_guild):
    gid = running_guild.id
    async with syscomms(gid) as system, usercomms(gid):
        await system.until(lambda f: f["format"] == REPORT and f["payload"]["guild_health"] == "ok", what="ok")
        async with syscomms(gid, user_id="ann") as anns, usercomms(gid, user_id="ann", user_name="Ann"):
            await anns.until(lambda f: f["format"] == REPORT and f["payload"]["guild_health"] == "ok",
                             what="ok for ann, her proxy up")
            after = len(system.frames)
            await system.until(lambda f: f["format"] == REPORT and system.frames.index(f) >= after,
                               what="a report after ann joined")
            for report in [f for f in system.frames[after:] if f["format"] == REPORT]:
                assert "upa-testuser123" in report["payload"]["agents"]
                assert "upa-ann" not in report["payload"]["agents"]
                assert any(entry["name"] == "EchoAgent" for entry in report["payload"]["agents"].values())


def moved_but_not_reported(rig, status: str) -> Guild:
    """A guild the manager has just moved to `status` in the database, its last report still saying STARTING
    (nothing runs it here, so no report comes after)."""
    guild = rig.create(echo_spec(), launch=False)
    Guild.objects.filter(pk=guild.id).update(status=status)
    rig.observe(guild).publish(topic_names.GUILD_STATUS_TOPIC, format=formats.AGENTS_HEALTH_REPORT,
                               payload={"agents": {}, "guild_health": "starting", "guild_status": "STARTING"})
    return guild


@pytest.fixture
def guild_between_status_and_report(rig):
    return moved_but_not_reported(rig, GuildStatus.RUNNING)


@pytest.fixture
def guild_failed_after_its_report(rig):
    return moved_but_not_reported(rig, GuildStatus.ERROR)


async def test_a_socket_opening_between_a_status_move_and_its_report_hears_the_new_status(
        guild_between_status_and_report):
    async with syscomms(guild_between_status_and_report.id) as system:
        first = await system.receive()
        assert first["format"] == REPORT
        assert first["payload"]["guild_status"] == "RUNNING"
        assert first["payload"]["guild_health"] == "starting"  # the report's own health: no "ok" from a status


async def test_a_guild_that_failed_after_its_last_report_is_reported_in_error(guild_failed_after_its_report):
    async with syscomms(guild_failed_after_its_report.id) as system:
        first = await system.receive()
        assert first["format"] == REPORT
        assert (first["payload"]["guild_status"], first["payload"]["guild_health"]) == ("ERROR", "error")
