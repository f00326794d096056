"""GET /api/guilds/{id}/history: an operator browses a topic of the guild's stored messages, filtered and paged."""

from __future__ import annotations

import pytest

from guilds.engines import bus_of
from guilds.models import GuildStatus
from guilds.runtime import loop as runtime_loop
from messaging import topics as t
from messaging.message import Message
from tests import factories
from tests.factories import bearer, joined
from tests.runtime.conftest import echo_spec, rig, wait_for  # noqa: F401 - the rig is a fixture (both engines)

pytestmark = pytest.mark.django_db

ECHO = {"id": "echo", "name": "EchoAgent"}
ANN = {"id": "upa-ann", "name": "ann"}
LLM_FORMAT = "rustic_ai.core.guild.agent_ext.depends.llm.models.ChatCompletionResponse"


def said(guild, topic: str, *lines: tuple[dict, str, str]) -> list[Message]:
    """Publish (sender, format, text) lines on the guild's bus, in order."""
    async def publish():
        bus = bus_of(guild.id, guild.spec)
        return [await bus.publish(Message.create(sender=sender, topics=topic, format=message_format,
                                                 payload={"text": text}))
                for sender, message_format, text in lines]
    return runtime_loop.run(publish())


def browse(api, guild, query: str = "", *, as_user: str = "user1"):
    return api.get(f"/api/guilds/{guild.id}/history{query}", HTTP_X_USER_ID=as_user)


def texts(response) -> list[str]:
    assert response.status_code == 200, response.content
    return [m["payload"]["text"] for m in response.json()["messages"]]


def test_the_default_topic_newest_first_with_the_guilds_topics(api):
    guild = factories.guild()  # the launcher user1 is a member
    joined(guild, "ann")
    sent = said(guild, t.DEFAULT_TOPIC, (ANN, "text", "one"), (ECHO, "text", "two"))
    said(guild, "echo_topic", (ECHO, "text", "elsewhere"))
    response = browse(api, guild)
    assert texts(response) == ["two", "one"]
    body = response.json()
    assert body["topic"] == t.DEFAULT_TOPIC
    assert body["next_before_id"] is None
    # The wire form as stored: ids as decimal strings, the topic it was published to.
    assert body["messages"][0] == {**sent[1].to_wire(), "topic_published_to": t.DEFAULT_TOPIC}
    assert body["topics"] == sorted([t.DEFAULT_TOPIC, t.GUILD_STATUS_TOPIC, "echo_topic",
                                     "user:ann:inbox", "user:ann:notifications",
                                     "user:user1:inbox", "user:user1:notifications"])
    assert texts(browse(api, guild, "?topic=echo_topic")) == ["elsewhere"]
    assert texts(browse(api, guild, "?topic=user:ann:notifications")) == []


def test_the_topics_include_every_agents_topics_and_the_routes_destinations(api):
    spec = {**echo_spec(), "agents": [
        {"name": "EchoAgent", "class_name": factories.ECHO, "additional_topics": ["echo_topic", "more_echo"]},
        {"name": "Second", "class_name": factories.ECHO, "additional_topics": ["second_topic"]},
    ], "routes": {"steps": [
        {"agent": {"name": "EchoAgent"}, "destination": {"topics": ["routed_out", "echo_topic"]}},
        {"agent_type": factories.ECHO, "destination": {"topic": "single_routed"}},
    ]}}
    guild = factories.guild(spec=spec)
    topics = browse(api, guild).json()["topics"]
    assert {"echo_topic", "more_echo", "second_topic", "routed_out", "single_routed",
            t.DEFAULT_TOPIC, t.GUILD_STATUS_TOPIC} <= set(topics)
    assert topics == sorted(topics)
    said(guild, "routed_out", (ECHO, "text", "routed"))
    assert texts(browse(api, guild, "?topic=routed_out")) == ["routed"]


def test_filters_by_sender_id_or_name_and_by_full_or_short_format(api):
    guild = factories.guild()
    said(guild, t.DEFAULT_TOPIC, (ANN, "text", "hello"), (ECHO, LLM_FORMAT, "completion"),
         (ECHO, "text", "echo"), ({"id": "other", "name": "Other"}, LLM_FORMAT, "other completion"))
    assert texts(browse(api, guild, "?sender=echo")) == ["echo", "completion"]  # by id
    assert texts(browse(api, guild, "?sender=EchoAgent")) == ["echo", "completion"]  # by name
    assert texts(browse(api, guild, "?sender=Echo")) == []  # exact, not a prefix
    assert texts(browse(api, guild, f"?format={LLM_FORMAT}")) == ["other completion", "completion"]
    assert texts(browse(api, guild, "?format=ChatCompletionResponse")) == ["other completion", "completion"]
    assert texts(browse(api, guild, "?format=models.ChatCompletionResponse")) == []  # only the last part
    assert texts(browse(api, guild, "?format=text&sender=upa-ann")) == ["hello"]
    assert texts(browse(api, guild, "?format=text&sender=Other")) == []


def test_pages_older_with_before_id_without_overlap_until_next_before_id_is_null(api):
    guild = factories.guild()
    said(guild, t.DEFAULT_TOPIC, *[(ECHO if i % 2 else ANN, "text", f"m{i}") for i in range(7)])
    first = browse(api, guild, "?sender=echo&limit=2")  # echo said m1, m3, m5
    assert texts(first) == ["m5", "m3"]
    cursor = first.json()["next_before_id"]
    assert isinstance(cursor, str)
    assert cursor == first.json()["messages"][-1]["id"]
    second = browse(api, guild, f"?sender=echo&limit=2&before_id={cursor}")
    assert texts(second) == ["m1"]
    assert second.json()["next_before_id"] is None
    # Unfiltered, two full pages and a last one: every message once.
    pages, cursor = [], None
    while True:
        response = browse(api, guild, "?limit=3" + (f"&before_id={cursor}" if cursor else ""))
        pages.append(texts(response))
        cursor = response.json()["next_before_id"]
        if cursor is None:
            break
    assert pages == [["m6", "m5", "m4"], ["m3", "m2", "m1"], ["m0"]]


def test_the_default_limit_is_50(api):
    guild = factories.guild()
    said(guild, t.DEFAULT_TOPIC, *[(ECHO, "text", f"m{i}") for i in range(52)])
    response = browse(api, guild)
    assert texts(response) == [f"m{i}" for i in range(51, 1, -1)]
    assert texts(browse(api, guild, f"?before_id={response.json()['next_before_id']}")) == ["m1", "m0"]


@pytest.mark.parametrize(("query", "field"), [
    ("?topic=nope", "topic"), ("?topic=user:stranger:inbox", "topic"), ("?topic=agent_inbox:echo", "topic"),
    ("?topic=" + "x" * 301, "topic"), ("?sender=" + "s" * 201, "sender"), ("?format=" + "f" * 301, "format"),
    ("?limit=0", "limit"), ("?limit=101", "limit"), ("?limit=abc", "limit"), ("?limit=-1", "limit"),
    ("?limit=%D9%A1", "limit"), ("?limit=" + "9" * 5000, "limit"),
    ("?before_id=xyz", "before_id"), ("?before_id=-1", "before_id"), ("?before_id=" + "9" * 30, "before_id"),
    ("?before_id=" + "1" * 41, "before_id"),
])
def test_bad_input_is_a_400_naming_the_field(api, problem, query, field):
    guild = factories.guild()
    body = problem(browse(api, guild, query), 400, "invalid")
    assert list(body["errors"]) == [field]


def test_a_bad_topic_names_the_kinds_allowed(api, problem):
    body = problem(browse(api, factories.guild(), "?topic=nope"), 400)
    assert "user:{member}:inbox" in body["errors"]["topic"][0]


def test_the_launcher_and_the_organisations_admins_browse_and_nobody_else(api, problem, settings):
    settings.AUTH_DISABLED = False
    guild = factories.guild(org="org1", user="user1")
    factories.member("org1", "boss", "admin")
    factories.member("org1", "ann")  # joined the guild: her own history, not everyone's
    joined(guild, "ann")
    factories.member("org2", "eve", "admin")
    said(guild, t.DEFAULT_TOPIC, (ECHO, "text", "secret"))
    for who in ("user1", "boss"):
        assert texts(api.get(f"/api/guilds/{guild.id}/history", **bearer(who))) == ["secret"]
    problem(api.get(f"/api/guilds/{guild.id}/history", **bearer("ann")), 403, "permission_denied")
    problem(api.get(f"/api/guilds/{guild.id}/history", **bearer("eve")), 404, "not_found")
    problem(api.get("/api/guilds/no-such-guild/history", **bearer("boss")), 404, "not_found")
    problem(api.get(f"/api/guilds/{guild.id}/history"), 401)


def test_a_running_guilds_echo_is_browsed_by_topic_and_sender(api, rig, settings):  # noqa: F811
    settings.AUTH_DISABLED = False
    guild = rig.create(echo_spec(), user_id="testuser123")
    rig.wait_status(guild, GuildStatus.RUNNING)
    sent = api.post(f"/api/guilds/{guild.id}/messages", {"format": "text", "payload": {"text": "Hello Echo!"}},
                    format="json", **bearer("testuser123"))
    assert sent.status_code == 202, sent.content
    notifications = f"/api/guilds/{guild.id}/history?topic=user:testuser123:notifications&sender=EchoAgent"
    echoed = wait_for(lambda: texts(api.get(notifications, **bearer("testuser123"))), what="the echo")
    assert echoed == ["Echo: Hello Echo!"]
    asked = texts(api.get(f"/api/guilds/{guild.id}/history?topic=echo_topic&format=text", **bearer("testuser123")))
    assert asked == ["Hello Echo!"]
