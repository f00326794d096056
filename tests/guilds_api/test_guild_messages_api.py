"""POST /api/guilds/{id}/messages: a message into a running guild as the caller's, as their user socket sends one."""

from __future__ import annotations

import pytest

from guilds.engines import bus_of
from guilds.models import Guild, GuildMember, GuildStatus, Run
from guilds.runtime import loop as runtime_loop
from guilds.runtime import runs, suspension
from guilds.runtime.manager import user_proxy_id
from guilds.services import guild_stop
from messaging import topics as topic_names
from messaging.message import AgentTag, Message
from tests import factories
from tests.factories import bearer
from tests.runtime.conftest import echo_spec, rig, wait_for  # noqa: F401 - the rig is a fixture (both engines)

LAUNCHER = "testuser123"  # the rig's launcher, a member of testorg456


@pytest.fixture
def running(rig, settings):  # noqa: F811 - pytest fixture injection
    settings.AUTH_DISABLED = False
    guild = rig.create(echo_spec(), user_id=LAUNCHER)
    rig.wait_status(guild, GuildStatus.RUNNING)
    factories.member("testorg456", "ann")
    factories.member("testorg456", "vic", "viewer")
    factories.organization("org-b", eve="member")
    return guild


def post(api, guild_id: str, who: str, body: dict):
    return api.post(f"/api/guilds/{guild_id}/messages", body, **bearer(who))


def echo_id(guild: Guild) -> str:
    return guild.spec["agents"][0]["id"]


def test_a_posted_message_goes_by_the_guilds_routes_and_its_echo_reaches_the_user(api, rig, running):  # noqa: F811
    heard = rig.observe(running, topic_names.user_notifications("ann"))
    response = post(api, running.id, "ann", {"format": "text", "payload": {"text": "Hello Echo!"},
                                             "conversation_id": "trip"})
    assert response.status_code == 202, response.content
    sent = response.json()["id"]
    assert isinstance(sent, str)
    assert sent.isdigit()
    echo = heard.wait(lambda m: m.payload.get("text") == "Echo: Hello Echo!", what="the echo")
    assert echo.sender.name == "EchoAgent"
    assert echo.conversation_id == "trip"
    assert heard.wait(lambda m: m.id == int(sent), what="the user's own message, confirmed").payload["text"] == "Hello Echo!"
    assert GuildMember.objects.filter(guild=running, user__username="ann").exists()  # as joining by socket
    # What the user's socket and history show, over REST too.
    history = wait_for(lambda: [m for m in api.get(f"/api/guilds/{running.id}/ann/messages", **bearer("ann")).json()
                                if m["payload"].get("text") == "Echo: Hello Echo!"], what="the echo in the history")
    assert history


def test_a_message_to_a_named_agent_goes_to_its_inbox_alone(api, rig, running):  # noqa: F811
    agent = echo_id(running)
    inbox = rig.observe(running, topic_names.agent_inbox(agent), "echo_topic")
    heard = rig.observe(running, topic_names.user_notifications("ann"))
    response = post(api, running.id, "ann", {"format": "text", "payload": {"text": "just you"}, "agent": agent})
    assert response.status_code == 202, response.content
    heard.wait(lambda m: m.payload.get("text") == "Echo: just you", what="the echo")
    delivered = inbox.wait(lambda m: m.id == int(response.json()["id"]), what="the message in the agent's inbox")
    assert delivered.topic_published_to == topic_names.agent_inbox(agent)
    assert [m for m in inbox.messages if m.topic_published_to == "echo_topic"] == []  # past the routes


def test_a_suspended_guild_is_resumed_first(api, rig, running):  # noqa: F811
    def suspend() -> bool:
        runtime_loop.run(suspension.suspend_idle(rig.engine, [running.id], idle=0.000001))
        running.refresh_from_db()
        return running.suspended
    wait_for(suspend, what="the guild suspended")
    heard = rig.observe(running, topic_names.user_notifications("ann"))
    response = post(api, running.id, "ann", {"format": "text", "payload": {"text": "wake up"}})
    assert response.status_code == 202, response.content
    heard.wait(lambda m: m.payload.get("text") == "Echo: wake up", what="the echo from the resumed guild")
    running.refresh_from_db()
    assert not running.suspended


def test_refusals_answer_in_the_documented_shape(api, problem, running, settings):
    settings.GUILDSITE_WS_FRAME_MAX_BYTES = 2048
    text = {"format": "text", "payload": {"text": "hi"}}
    problem(post(api, running.id, "ann", {**text, "agent": "nobody"}), 404, "not_found")
    problem(post(api, "no-such-guild", "ann", text), 404, "not_found")
    problem(post(api, running.id, "eve", text), 404, "not_found")  # another organisation's guild
    problem(post(api, running.id, "vic", text), 403, "permission_denied")  # a viewer only watches, as on the socket
    problem(api.post(f"/api/guilds/{running.id}/messages", text), 401)
    too_big = problem(post(api, running.id, "ann", {"format": "text", "payload": {"text": "x" * 3000}}), 400, "invalid")
    assert "payload" in too_big["errors"]
    assert "format" in problem(post(api, running.id, "ann", {"format": "stopGuildRequest", "payload": {}}), 400)["errors"]
    assert "payload" in problem(post(api, running.id, "ann", {"format": "text", "payload": [1]}), 400)["errors"]
    assert "agent" in problem(post(api, running.id, "ann", {**text, "agent": "a" * 129}), 400)["errors"]
    problem(post(api, running.id, "ann", {**text, "conversation_id": "c" * 257}), 400, "invalid")
    problem(post(api, running.id, "ann", {"payload": {}}), 400, "invalid")
    assert not GuildMember.objects.filter(guild=running, user__username__in=["eve", "vic"]).exists()


def test_a_stopped_guild_is_a_409(api, problem, running):
    guild_stop(guild_id=running.id, user_id=LAUNCHER)
    problem(post(api, running.id, "ann", {"format": "text", "payload": {"text": "hi"}}), 409, "conflict")


def test_the_message_is_stored_on_the_users_inbox_as_a_socket_frame_would_be(api, running):
    response = post(api, running.id, "ann", {"format": "text", "payload": {"text": "stored"}})
    assert response.status_code == 202, response.content

    async def inbox():
        return await bus_of(running.id, running.spec).get_messages(topic_names.user_inbox("ann"))
    stored = runtime_loop.run(inbox())
    assert [(m.id, m.sender.id, m.payload) for m in stored] == [(int(response.json()["id"]), "ann", {"text": "stored"})]


# --- runs of the trigger `api` ------------------------------------------------------------------------


def run_updates(observer, run_id: str) -> list[tuple[str, str]]:
    return [(m.payload["status"], m.payload["trigger"]) for m in observer.of_format("runUpdate")
            if m.payload["run_id"] == run_id]


def test_a_message_to_a_named_agent_returns_its_run_queued_which_its_handling_ends(api, rig, running):  # noqa: F811
    updates = rig.observe(running, topic_names.SYSTEM_TOPIC)
    heard = rig.observe(running, topic_names.user_notifications("ann"))
    response = post(api, running.id, "ann", {"format": "text", "payload": {"text": "run me"}, "agent": echo_id(running)})
    assert response.status_code == 202, response.content
    run_id = response.json()["run_id"]
    heard.wait(lambda m: m.payload.get("text") == "Echo: run me", what="the echo")
    wait_for(lambda: run_updates(updates, run_id) == [("running", "api"), ("succeeded", "api")], what="the run's updates")
    run = api.get(f"/api/runs/{run_id}", **bearer("ann")).json()
    assert (run["status"], run["trigger"], run["agent_id"], run["message_id"]) == (
        "succeeded", "api", echo_id(running), response.json()["id"])
    assert run["requester"] == "ann"
    assert run["duration_ms"] is not None
    assert run["error"] == ""


def test_a_routed_message_is_a_run_of_each_agent_that_takes_it_and_not_of_the_users_proxy(api, rig, running):  # noqa: F811
    heard = rig.observe(running, topic_names.user_notifications("ann"))
    response = post(api, running.id, "ann", {"format": "text", "payload": {"text": "routed"}})
    assert response.status_code == 202, response.content
    assert "run_id" not in response.json()  # the routes decide who takes it
    heard.wait(lambda m: m.payload.get("text") == "Echo: routed", what="the echo")
    listed = wait_for(lambda: [r for r in api.get(f"/api/runs?message_id={response.json()['id']}",
                                                  **bearer("ann")).json()["results"] if r["status"] == "succeeded"],
                      what="the echo agent's run")
    assert [(r["agent_id"], r["trigger"]) for r in listed] == [(echo_id(running), "api")]


def test_a_socket_message_is_no_run_of_an_agent_that_records_none(api, rig, running):  # noqa: F811
    heard = rig.observe(running, topic_names.user_notifications("ann"))
    rig.join(running, "ann", "Ann")
    rig.observe(running).publish(topic_names.user_inbox("ann"), {"text": "by socket"}, sender=AgentTag(id="ann", name="Ann"))
    heard.wait(lambda m: m.payload.get("text") == "Echo: by socket", what="the echo")
    assert not Run.objects.filter(guild=running).exists()


def test_a_run_cancelled_while_queued_is_never_handled(api, rig, running):  # noqa: F811
    heard = rig.observe(running, topic_names.user_notifications("ann"))
    response = post(api, running.id, "ann", {"format": "text", "payload": {"text": "warm up"}, "agent": echo_id(running)})
    heard.wait(lambda m: m.payload.get("text") == "Echo: warm up", what="the proxy up and the agent answering")
    # A queued run, cancelled before its agent takes its message (as POST /api/runs/{id}/cancel does).
    proxy = AgentTag(id=user_proxy_id("ann"), name="ann")
    first = Message.create(sender=proxy, topics=[topic_names.agent_inbox(echo_id(running))],
                           payload={"text": "never"}, format="text", trigger="api")
    queued = runtime_loop.run(runs.run_queue(guild_id=running.id, agent_id=echo_id(running), message_id=first.id,
                                             trigger="api", requester="ann"))
    assert api.post(f"/api/runs/{queued.pk}/cancel", **bearer("ann")).status_code == 202
    runtime_loop.run(bus_of(running.id, running.spec).publish(first))
    wait_for(lambda: Run.objects.get(pk=queued.pk).status == "cancelled", what="the run cancelled")
    then = post(api, running.id, "ann", {"format": "text", "payload": {"text": "after"}, "agent": echo_id(running)})
    assert then.status_code == 202
    heard.wait(lambda m: m.payload.get("text") == "Echo: after", what="the next message's echo")
    assert not [m for m in heard.messages if m.payload.get("text") == "Echo: never"]
    assert response.status_code == 202
