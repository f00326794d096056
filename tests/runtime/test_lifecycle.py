"""A guild's life through the bus: launch, health, users, errors, stop, relaunch."""

from __future__ import annotations

import pytest
from django.urls import reverse

from guilds.engines import bus_of
from guilds.models import AgentKind, Guild, GuildAgent, GuildStatus
from guilds.runtime import formats
from guilds.runtime import loop as runtime_loop
from guilds.runtime.requests import system_request
from guilds.services import GuildStopped, guild_relaunch, guild_stop, guilds_relaunch_live
from messaging import topics as t
from messaging.delivery.keys import subscribers_key
from tests.runtime.conftest import PROBE, echo_spec, seed_spec, wait_for

pytestmark = pytest.mark.django_db(transaction=True)


def with_probe(**probe_properties) -> dict:
    spec = echo_spec()
    spec["agents"].append({"name": "Probe", "class_name": PROBE, "additional_topics": ["probe_topic"],
                           "listen_to_default_topic": False, "properties": probe_properties})
    return spec


def test_launch_goes_through_the_seed_statuses_to_running_with_a_health_report(rig):
    guild = rig.create(echo_spec(), launch=False)
    status_topic = rig.observe(guild)
    assert rig.status(guild) == GuildStatus.REQUESTED
    rig.launch(guild)
    rig.wait_status(guild, GuildStatus.RUNNING)
    status_topic.wait(lambda m: m.format == formats.GUILD_STATUS and m.payload["status"] == "RUNNING")
    assert status_topic.statuses() == ["PENDING_LAUNCH", "STARTING", "RUNNING"]
    report = status_topic.wait(lambda m: m.format == formats.AGENTS_HEALTH_REPORT
                               and m.payload["guild_health"] == "ok")
    (echo_id, echo_health), = report.payload["agents"].items()
    assert echo_health["checkstatus"] == "ok"
    assert echo_health["name"] == "EchoAgent"
    assert set(echo_health) >= {"checktime", "checkstatus", "responsetime", "checkmeta"}
    assert set(echo_health["checkmeta"]) == {"qos_latency", "observed_latency"}
    assert report.sender.name == "GuildManagerAgent"
    assert GuildAgent.objects.get(guild=guild, agent_id=echo_id).status == "running"


def test_later_reports_keep_each_heartbeat_as_the_agent_sent_it(rig):
    # A Celery worker saves the manager's memory between messages and loads it again: a report made after
    # a reload shows the heartbeat as it came (the echo agent's qos_latency is null), not a copy missing keys.
    guild = rig.create(echo_spec(), launch=False)
    status_topic = rig.observe(guild)
    rig.launch(guild)
    rig.wait_status(guild, GuildStatus.RUNNING)

    def ok_reports():
        return [m for m in status_topic.of_format(formats.AGENTS_HEALTH_REPORT) if m.payload["guild_health"] == "ok"]

    wait_for(lambda: len(ok_reports()) >= 4, 20, "four reports of a well guild")
    for report in ok_reports():
        (echo_health,) = report.payload["agents"].values()
        assert echo_health["checkmeta"]["qos_latency"] is None, report.payload
        assert echo_health["checkmeta"]["observed_latency"] >= 0



def test_the_admin_shows_the_manager_running_in_a_running_guild(rig, admin_client):
    guild = rig.create(echo_spec())
    rig.wait_status(guild, GuildStatus.RUNNING)
    page = admin_client.get(reverse("admin:guilds_guildagent_changelist"), {"guild__id": guild.id}).content.decode()
    manager_row, = [row for row in page.split("<tr") if "GuildManagerAgent" in row]
    assert "Running" in manager_row
    assert "Starting" not in manager_row

def test_a_user_message_reaches_the_echo_agent_without_routes_and_the_echo_reaches_the_user(rig):
    guild = rig.create(echo_spec())
    rig.wait_status(guild, GuildStatus.RUNNING)
    user = rig.observe(guild, t.user_notifications("testuser123"))
    rig.join(guild, "testuser123", "Test User")
    sent = user_sends(rig, guild, "testuser123", "Hello Echo!")
    echo = user.wait(lambda m: m.payload.get("text") == "Echo: Hello Echo!", what="the echo")
    assert echo.format == "text"
    assert echo.sender.name == "EchoAgent"
    assert echo.in_response_to == sent.id
    assert echo.thread == [sent.id, echo.id]
    assert echo.topics == [t.user_notifications("testuser123")]
    own = user.wait(lambda m: m.id == sent.id, what="the user's own message, confirmed")
    assert own.payload == {"text": "Hello Echo!"}


@pytest.mark.parametrize("rig", ["inprocess"], indirect=True)  # the Celery engine's is the web process's (e2e)
def test_while_their_proxy_has_nothing_to_do_a_users_message_goes_straight_into_the_guild(rig):
    from guilds.runtime.manager import user_proxy_id
    from messaging.message import AgentTag, Message

    guild = rig.create(echo_spec())
    rig.wait_status(guild, GuildStatus.RUNNING)
    user = rig.observe(guild, t.user_notifications("testuser123"), t.user_inbox("testuser123"))

    def sent(text: str) -> Message:
        return Message.create(sender=AgentTag(id="testuser123", name="testuser123"), topics=t.user_inbox("testuser123"),
                              payload={"text": text}, format="text")

    # No proxy yet: the message is left to the user's inbox.
    assert runtime_loop.run(rig.engine.forward_for_user(guild.id, "testuser123", sent("Too early"))) is False
    rig.join(guild, "testuser123", "Test User")
    hosts = rig.engine.guilds[guild.id].hosts
    wait_for(lambda: (proxy := hosts.get(user_proxy_id("testuser123"))) is not None and proxy.started
             and not proxy.delivery.busy, what="the user's proxy, idle")

    message = sent("Straight in")
    assert runtime_loop.run(rig.engine.forward_for_user(guild.id, "testuser123", message)) is True
    echo = user.wait(lambda m: m.payload.get("text") == "Echo: Straight in", what="the echo")
    assert echo.in_response_to == message.id
    own = user.wait(lambda m: m.id == message.id, what="the user's own message, as the guild got it")
    assert own.sender.id == user_proxy_id("testuser123")  # sent on as the proxy would
    assert [m for m in user.messages if m.topic_published_to == t.user_inbox("testuser123")] == []  # not via the inbox



@pytest.mark.parametrize("rig", ["inprocess"], indirect=True)
def test_a_message_the_routes_copy_several_times_goes_straight_in_only_where_the_copies_cannot_be_overtaken(rig):
    # Production's sockets ask for one store only: copies stored one by one from outside the proxy would leave it
    # looking idle to the stand-in between them, so a reply to an early copy could pass the user's own message.
    from guilds.runtime.manager import USER_PROXY_CLASS, user_proxy_id
    from guilds.runtime.user_proxy import forward_for_proxy
    from messaging.message import AgentTag, Message

    spec = echo_spec(routes={"steps": [
        {"agent_type": USER_PROXY_CLASS, "destination": {"topics": "echo_topic"}},
        {"agent_type": USER_PROXY_CLASS, "destination": {"topics": "elsewhere"}},
    ]})
    guild = rig.create(spec)
    rig.wait_status(guild, GuildStatus.RUNNING)
    elsewhere = rig.observe(guild, "elsewhere")
    rig.join(guild, "testuser123", "Test User")
    hosts = rig.engine.guilds[guild.id].hosts
    proxy = wait_for(lambda: (host := hosts.get(user_proxy_id("testuser123"))) is not None and host.started and host,
                     what="the user's proxy")

    def sent(text: str) -> Message:
        return Message.create(sender=AgentTag(id="testuser123", name="testuser123"), topics=t.user_inbox("testuser123"),
                              payload={"text": text}, format="text")

    assert runtime_loop.run(forward_for_proxy(proxy, "testuser123", sent("Left to the proxy"), one_store_only=True)) is False
    assert runtime_loop.run(forward_for_proxy(proxy, "testuser123", sent("Straight in"))) is True
    copy = elsewhere.wait(lambda m: m.payload.get("text") == "Straight in", what="the second route's copy")
    assert copy.sender.id == user_proxy_id("testuser123")
    assert [m for m in elsewhere.messages if m.payload.get("text") == "Left to the proxy"] == []


def user_sends(rig, guild, user_id: str, text: str, format: str = "text"):
    from messaging.message import AgentTag

    observer = rig.observers[0]
    return observer.publish(t.user_inbox(user_id), {"text": text}, format=format,
                            sender=AgentTag(id=user_id, name=user_id))


@pytest.mark.services
def test_the_seed_blueprint_verbatim_runs_with_its_redis_messaging(rig):
    guild = rig.create(seed_spec())
    rig.wait_status(guild, GuildStatus.RUNNING)
    user = rig.observe(guild, t.user_notifications("testuser123"))
    rig.join(guild, "testuser123", "Test User")
    user_sends(rig, guild, "testuser123", "Hello Echo!")
    user.wait(lambda m: m.payload.get("text") == "Echo: Hello Echo!", what="the echo over Redis")


def test_a_message_sent_before_the_proxy_is_up_waits_for_it(rig):
    guild = rig.create(echo_spec())
    rig.wait_status(guild, GuildStatus.RUNNING)
    user = rig.observe(guild, t.user_notifications("early"))

    async def join_and_talk_at_once():
        from messaging.message import AgentTag, Message

        await system_request(bus_of(guild.id, guild.spec), format_name=formats.USER_AGENT_CREATION_REQUEST,
                             payload={"user_id": "early", "user_name": "Early"}, user_id="early")
        message = Message.create(sender=AgentTag(id="early"), topics=t.user_inbox("early"),
                                 payload={"text": "first!"}, format="text")
        await user.bus.publish(message)

    runtime_loop.run(join_and_talk_at_once())
    user.wait(lambda m: m.payload.get("text") == "Echo: first!", what="the echo of the early message")
    assert len([m for m in user.messages if m.payload.get("text") == "Echo: first!"]) == 1


def test_a_joining_user_gets_a_proxy_that_the_next_report_and_participants_include(rig):
    guild = rig.create(echo_spec())
    rig.wait_status(guild, GuildStatus.RUNNING)
    status = rig.observe(guild, t.GUILD_STATUS_TOPIC, t.user_system_notifications("testuser123"))
    rig.join(guild, "testuser123", "Test User")
    report = status.wait(lambda m: m.format == formats.AGENTS_HEALTH_REPORT
                         and m.payload["agents"].get("upa-testuser123", {}).get("checkstatus") == "ok")
    assert report.payload["agents"]["upa-testuser123"]["name"] == "Test User"
    assert GuildAgent.objects.get(guild=guild, agent_id="upa-testuser123").kind == AgentKind.HUMAN
    runtime_loop.run(system_request(bus_of(guild.id, guild.spec), format_name="participantsRequest",
                                    payload={"guild_id": guild.id, "user_id": "testuser123"}, user_id="testuser123"))
    participants = status.wait(lambda m: m.format == "Participants").payload["participants"]
    assert {"name": "EchoAgent", "type": "bot"}.items() <= next(p for p in participants if p["name"] == "EchoAgent").items()
    assert {"id": "upa-testuser123", "name": "Test User", "type": "human"} in participants
    rig.join(guild, "testuser123", "Test User")  # a second tab: still one proxy
    assert GuildAgent.objects.filter(guild=guild, kind=AgentKind.HUMAN).count() == 1


def test_user_proxies_answer_no_heartbeats_and_stay_up_round_after_round(rig):
    guild = rig.create(echo_spec())
    rig.wait_status(guild, GuildStatus.RUNNING)
    status = rig.observe(guild)
    joined = status.publish("nobody_listens", {}).timestamp
    for user_id in ("ann", "bob"):
        rig.join(guild, user_id, user_id.title())
    # A report from well past the heartbeat timeout (1 s here): the proxies were never asked, and are up.
    later = status.wait(lambda m: m.format == formats.AGENTS_HEALTH_REPORT and m.timestamp > joined + 2500,
                        what="a report 2.5 s after the joins")
    assert later.payload["guild_health"] == "ok"
    assert later.payload["guild_status"] == GuildStatus.RUNNING
    for user_id in ("ann", "bob"):
        assert later.payload["agents"][f"upa-{user_id}"]["checkstatus"] == "ok"
    assert [m.sender.id for m in status.of_format(formats.HEARTBEAT)]  # the EchoAgent's, every round
    assert not [m for m in status.of_format(formats.HEARTBEAT) if m.sender.id.startswith("upa-")]


def test_a_guild_of_users_alone_runs_and_reports_ok(rig):
    """No agent of its own: its users' proxies are the guild (their health is in their rows)."""
    guild = rig.create(echo_spec(agents=[]))
    status = rig.observe(guild)
    rig.join(guild, "ann", "Ann")
    rig.wait_status(guild, GuildStatus.RUNNING)
    report = status.wait(lambda m: m.format == formats.AGENTS_HEALTH_REPORT and "upa-ann" in m.payload["agents"],
                         what="a report with ann's proxy")
    assert report.payload["guild_health"] == "ok"


def test_a_proxy_subscribed_to_health_checks_by_an_earlier_release_stops_listening(rig):
    """Before proxies stopped answering health checks they listened to them; a guild that runs on across
    the upgrade keeps such proxies (a Celery agent's subscription lives in Redis). The first check one
    gets ends that subscription, so a thousand of them do not take a thousand messages every round."""
    guild = rig.create(echo_spec())
    rig.wait_status(guild, GuildStatus.RUNNING)
    rig.join(guild, "ann", "Ann")
    wait_for(lambda: GuildAgent.objects.filter(guild=guild, agent_id="upa-ann", status="running").exists(),
             10, "ann's proxy running")

    async def listening_as_before() -> None:
        if rig.engine.name == "inprocess":
            host = rig.engine.guilds[guild.id].hosts["upa-ann"]
            await host.guild.bus.subscribe(t.HEARTBEAT_TOPIC, host.delivery.client)
        else:
            control = await rig.engine.guild(guild.id)
            await (await control.inbox("upa-ann")).subscribe([t.HEARTBEAT_TOPIC])
            await (await control.roster()).joined("upa-ann", [t.HEARTBEAT_TOPIC])

    async def listening() -> bool:
        if rig.engine.name == "inprocess":
            host = rig.engine.guilds[guild.id].hosts["upa-ann"]
            return t.HEARTBEAT_TOPIC in host.guild.bus.topics_of("upa-ann")
        control = await rig.engine.guild(guild.id)
        inbox = await control.inbox("upa-ann")
        in_redis = await inbox.redis.sismember(subscribers_key(inbox.prefix, t.HEARTBEAT_TOPIC), "upa-ann")
        return bool(in_redis) or t.HEARTBEAT_TOPIC in await (await control.roster()).topics("upa-ann")

    runtime_loop.run(listening_as_before())
    assert runtime_loop.run(listening())
    wait_for(lambda: not runtime_loop.run(listening()), 10, "the proxy no longer listening to health checks")
    assert rig.engine.is_guild_running(guild.id)
    assert GuildAgent.objects.get(guild=guild, agent_id="upa-ann").status == "running"


def test_a_proxy_the_engine_no_longer_runs_is_unresponsive(rig):
    guild = rig.create(echo_spec())
    rig.wait_status(guild, GuildStatus.RUNNING)
    rig.join(guild, "ann", "Ann")
    wait_for(lambda: GuildAgent.objects.filter(guild=guild, agent_id="upa-ann", status="running").exists(),
             10, "ann's proxy running")
    status = rig.observe(guild)

    async def stop_the_proxy_behind_the_managers_back():
        engine = rig.engine
        control = engine.guilds[guild.id] if engine.name == "inprocess" else await engine.guild(guild.id)
        await control.stop_agent("upa-ann")

    runtime_loop.run(stop_the_proxy_behind_the_managers_back())
    report = status.wait(lambda m: m.format == formats.AGENTS_HEALTH_REPORT
                         and m.payload["agents"].get("upa-ann", {}).get("checkstatus") == "unresponsive")
    assert report.payload["guild_health"] == "warning"
    rig.wait_status(guild, GuildStatus.WARNING)


def test_an_agent_that_stops_answering_turns_the_guild_warning_until_it_recovers(rig):
    guild = rig.create(with_probe())
    rig.wait_status(guild, GuildStatus.RUNNING)
    status = rig.observe(guild)
    # Busy (its heartbeats wait behind) until the test says so: the fault lasts as long as it takes to see.
    status.publish("probe_topic", {"seconds": 30, "until": "release"}, format="probe.hold")
    rig.wait_status(guild, GuildStatus.WARNING)
    guild.refresh_from_db()
    assert "Probe" in guild.status_detail
    assert "unresponsive" in guild.status_detail
    Guild.objects.filter(pk=guild.pk).update(state={"release": True})
    rig.wait_status(guild, GuildStatus.RUNNING)

    def since_warning() -> list[str]:
        # The observer may also get the RUNNING announced as it subscribed (the status is stored before it is
        # published, and the test waited for the stored one): what counts comes from the WARNING on.
        seen = status.statuses()
        return seen[seen.index("WARNING"):] if "WARNING" in seen else []
    wait_for(lambda: len(since_warning()) >= 2, what="the RUNNING after the WARNING")
    assert since_warning() == ["WARNING", "RUNNING"]


def test_an_agent_woken_by_a_busy_agents_send_is_not_held_up_until_that_handler_ends(rig):
    # On the Celery engine the probe's drain task takes on, inline, the agents its sends wake: here the echo
    # agent, woken by what the probe says before its slow handler waits. The echo answers while the probe still
    # waits, not once it is done (a manager woken so would miss its heartbeats, and the guild its WARNING).
    spec = with_probe()
    spec["agents"][0]["additional_topics"].append("probe_seen")
    guild = rig.create(spec)
    rig.wait_status(guild, GuildStatus.RUNNING)
    probe_id = GuildAgent.objects.get(guild=guild, name="Probe").agent_id
    echo_id = GuildAgent.objects.get(guild=guild, name="EchoAgent").agent_id
    watcher = rig.observe(guild, t.agent_inbox(probe_id), t.agent_inbox("tester"))
    watcher.publish("probe_topic", {"text": "slow: 5"})
    echoed = watcher.wait(lambda m: m.sender.id == echo_id and m.format == "probe.started", what="the echo's answer")
    counted = watcher.wait(lambda m: m.sender.id == probe_id and m.payload.get("text") == "count: 1",
                           what="the probe's own answer, once its wait is over")
    assert watcher.messages.index(echoed) < watcher.messages.index(counted)


def test_a_handler_that_raises_sends_an_error_message_and_the_agent_keeps_running(rig):
    guild = rig.create(with_probe())
    rig.wait_status(guild, GuildStatus.RUNNING)
    watcher = rig.observe(guild, t.ERROR_TOPIC, t.agent_inbox("tester"))
    watcher.publish("probe_topic", {"message": "boom"}, format="probe.raise")
    error = watcher.wait(lambda m: m.format == formats.ERROR_MESSAGE, what="the error message")
    payload = error.payload
    assert payload["error_type"] == "UNHANDLED_EXCEPTION"
    assert "boom" in payload["error_message"]
    assert payload["agent_type"] == PROBE
    assert set(error.topics) == {t.ERROR_TOPIC, t.agent_inbox("tester")}  # the sender and the error topic
    assert len(watcher.of_format(formats.ERROR_MESSAGE)) == 1  # once, though the observer watches both
    watcher.publish("probe_topic", {"patch": {"alive": True}}, format="probe.state")
    watcher.wait(lambda m: m.format == "probe.state", what="the probe still answering")
    assert rig.status(guild) == GuildStatus.RUNNING


def test_a_blocking_sync_handler_does_not_stall_other_agents(rig):
    guild = rig.create(with_probe())
    rig.wait_status(guild, GuildStatus.RUNNING)
    watcher = rig.observe(guild, t.agent_inbox("tester"))
    # Blocked for 3 s: the echo must come while the probe is still blocked (a loaded CI machine takes more than
    # a second for an echo now and then, which an earlier 1 s block mistook for a stall).
    watcher.publish("probe_topic", {"seconds": 3.0}, format="probe.blocking")
    watcher.publish("echo_topic", {"text": "still here"})
    echo = watcher.wait(lambda m: m.payload.get("text") == "Echo: still here", timeout=2.5, what="a prompt echo")
    blocked = watcher.wait(lambda m: m.format == "probe.blocked", timeout=8)
    assert watcher.messages.index(echo) < watcher.messages.index(blocked)


def test_messages_one_handler_sends_to_another_agent_are_handled_in_the_order_sent(rig):
    spec = with_probe()
    spec["agents"].append({"name": "Counter", "class_name": PROBE, "additional_topics": ["numbered_topic"],
                           "listen_to_default_topic": False})
    guild = rig.create(spec)
    rig.wait_status(guild, GuildStatus.RUNNING)
    seen = rig.observe(guild, "probe_seen")
    seen.publish("probe_topic", {"count": 300, "topic": "numbered_topic"}, format="probe.burst")
    wait_for(lambda: len(seen.of_format("probe.seen")) >= 300, timeout=30, what="300 numbers handled")
    assert [m.payload["n"] for m in seen.of_format("probe.seen")] == list(range(1, 301))


def test_an_agent_that_cannot_start_puts_the_guild_in_error_with_the_reason(rig):
    guild = rig.create(with_probe(fail_on_start=True))
    rig.wait_status(guild, GuildStatus.ERROR)
    guild.refresh_from_db()
    assert "Probe" in guild.status_detail
    assert "fail_on_start" in guild.status_detail


def test_an_unreachable_messaging_backend_puts_the_guild_in_error_and_the_server_stays_up(rig, settings):
    settings.GUILDSITE_SPEC_REDIS_ALLOWED = ["127.0.0.1:1"]  # allowed, but nothing listens there
    spec = echo_spec(properties={"messaging": {
        "backend_module": "rustic_ai.redis.messaging.backend", "backend_class": "RedisMessagingBackend",
        "backend_config": {"redis_client": {"host": "127.0.0.1", "port": 1}}}})
    broken = rig.create(spec)
    rig.wait_status(broken, GuildStatus.ERROR)
    broken.refresh_from_db()
    assert "127.0.0.1:1" in broken.status_detail
    healthy = rig.create(echo_spec())
    rig.wait_status(healthy, GuildStatus.RUNNING)


def test_a_stored_spec_that_no_longer_validates_says_where_without_showing_its_values(rig):
    """A guild stored before a rule it breaks (here: an agent id a schedule's messages use) goes to ERROR when
    launched; its reason names the field, never the stored spec's values (its configuration's secrets)."""
    guild = rig.create(echo_spec(), launch=False)
    spec = dict(guild.spec)
    spec["agents"] = [{**spec["agents"][0], "id": "schedule-old"}]
    spec["configuration"] = {"service_token": "configured-token-6d21e0"}
    Guild.objects.filter(pk=guild.pk).update(spec=spec)
    rig.launch(guild)
    rig.wait_status(guild, GuildStatus.ERROR)
    guild.refresh_from_db()
    assert guild.status_detail.startswith("cannot launch: SpecError: spec: agent id 'schedule-old' is reserved")
    assert "configured-token-6d21e0" not in guild.status_detail
    assert "configured-token-6d21e0" not in guild.status_changes.get(status=GuildStatus.ERROR).detail


def test_stop_shuts_the_agents_down_and_is_final(rig):
    guild = rig.create(echo_spec())
    rig.wait_status(guild, GuildStatus.RUNNING)
    status = rig.observe(guild)
    stopped = guild_stop(guild_id=guild.id, user_id="testuser123")
    assert stopped.status == GuildStatus.STOPPED
    response = status.wait(lambda m: m.format == formats.STOP_GUILD_RESPONSE, what="the stop response")
    assert response.payload["user_id"] == "testuser123"
    assert not rig.engine.is_guild_running(guild.id)
    assert set(GuildAgent.objects.filter(guild=guild).values_list("status", flat=True)) == {"stopped"}
    with pytest.raises(GuildStopped):
        guild_stop(guild_id=guild.id, user_id="testuser123")
    with pytest.raises(GuildStopped):
        guild_relaunch(guild_id=guild.id)


def test_a_heartbeat_or_a_silence_noticed_after_a_stop_does_not_bring_an_agent_back(rig):
    """The manager may handle an agent's last heartbeat (or notice its silence) after the agent was stopped: its
    record stays stopped, else a drain would take it for a live agent and answer its messages."""
    from guilds.runtime import store

    guild = rig.create(echo_spec())
    rig.wait_status(guild, GuildStatus.RUNNING)
    echo = GuildAgent.objects.get(guild=guild, class_name__endswith="EchoAgent")
    guild_stop(guild_id=guild.id, user_id="testuser123")
    runtime_loop.run(store.agent_status_set(guild.id, echo.agent_id, "running"))
    runtime_loop.run(store.agent_status_set(guild.id, echo.agent_id, "unresponsive", "no heartbeat for 1.0 s"))
    echo.refresh_from_db()
    assert (echo.status, echo.status_detail) == ("stopped", "")


def test_after_a_restart_live_guilds_relaunch_with_their_state(rig):
    guild = rig.create(with_probe())
    rig.wait_status(guild, GuildStatus.RUNNING)
    watcher = rig.observe(guild, t.agent_inbox("tester"))
    watcher.publish("probe_topic", {"patch": {"count": 1}}, format="probe.state")
    watcher.wait(lambda m: m.format == "probe.state")
    watcher.publish("probe_topic", {"patch": {"shared": "yes"}}, format="probe.guild_state")
    watcher.wait(lambda m: m.format == "probe.guild_state")
    runtime_loop.run(rig.engine.forget(guild.id))  # the process that ran it is gone
    assert not rig.engine.is_guild_running(guild.id)
    assert guild.id in guilds_relaunch_live()
    rig.wait_status(guild, GuildStatus.RUNNING)
    watcher.messages.clear()
    watcher.publish("probe_topic", {"patch": {"again": True}}, format="probe.state")
    state = watcher.wait(lambda m: m.format == "probe.state").payload["state"]
    assert state == {"count": 1, "again": True}
    watcher.publish("probe_topic", {"patch": {}}, format="probe.guild_state")
    assert watcher.wait(lambda m: m.format == "probe.guild_state").payload["state"] == {"shared": "yes"}
    assert guild_relaunch(guild_id=guild.id) is False  # already running: nothing to do
    rig.join(guild, "joiner", "Joiner")  # a request on the system topic: the manager keeps its place there
    manager = wait_for(lambda: GuildAgent.objects.filter(
        guild=guild, agent_id="guild_manager", runtime__catch_up_cursors__has_key=t.SYSTEM_TOPIC).first(),
        what="the manager's cursor on the system topic")
    assert manager.state == {}  # the state its handlers see holds none of the engine's bookkeeping


def test_a_user_who_joins_before_the_manager_runs_gets_a_proxy_once_it_does(rig):
    guild = rig.create(echo_spec(), launch=False)
    user = rig.observe(guild, t.user_notifications("eager"))
    rig.join(guild, "eager", "Eager")  # published while the guild is still REQUESTED
    user_sends(rig, guild, "eager", "are you there?")
    rig.launch(guild)
    user.wait(lambda m: m.payload.get("text") == "Echo: are you there?", what="the echo after launch")
    assert GuildAgent.objects.filter(guild=guild, agent_id="upa-eager").exists()


def test_replies_are_stamped_when_made_not_when_asked(rig):
    guild = rig.create(with_probe())
    rig.wait_status(guild, GuildStatus.RUNNING)
    watcher = rig.observe(guild, t.agent_inbox("tester"))
    request = watcher.publish("probe_topic", {"seconds": 0.3}, format="probe.sleep")
    reply = watcher.wait(lambda m: m.format == "probe.slept")
    assert reply.timestamp >= request.timestamp + 300


def test_a_guild_in_error_relaunches_when_asked(rig):
    guild = rig.create(with_probe(fail_on_start=True))
    rig.wait_status(guild, GuildStatus.ERROR)
    assert guild_relaunch(guild_id=guild.id) is True  # it starts over (and fails again, by design)
    rig.wait_status(guild, GuildStatus.ERROR)
