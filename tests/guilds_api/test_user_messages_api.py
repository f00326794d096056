"""GET /api/guilds/{id}/{user_id}/messages: a user's history, what their socket shows."""

from __future__ import annotations

import pytest

from guilds.engines import bus_of
from guilds.runtime import loop as runtime_loop
from messaging import topics as t
from messaging.message import Message
from tests.factories import guild as make_guild
from tests.factories import joined

pytestmark = pytest.mark.django_db


def told(guild, user_id: str, *texts: str) -> list[Message]:
    async def publish():
        bus = bus_of(guild.id, guild.spec)
        return [await bus.publish(Message.create(sender={"id": "echo", "name": "EchoAgent"},
                                                 topics=t.user_notifications(user_id), payload={"text": text}))
                for text in texts]
    return runtime_loop.run(publish())


def history(api, guild, user_id: str, query: str = "", *, as_user: str | None = None):
    return api.get(f"/api/guilds/{guild.id}/{user_id}/messages{query}", HTTP_X_USER_ID=as_user or user_id)


def texts(response) -> list[str]:
    assert response.status_code == 200, response.content
    return [m["payload"]["text"] for m in response.json()]


def test_a_user_reads_their_history_oldest_first_and_pages_on_with_since_id(api):
    guild = make_guild()
    joined(guild, "ann")
    sent = told(guild, "ann", "one", "two", "three", "four")
    assert texts(history(api, guild, "ann")) == ["one", "two", "three", "four"]
    assert texts(history(api, guild, "ann", "?limit=2")) == ["three", "four"]
    assert texts(history(api, guild, "ann", f"?since_id={sent[0].id}&limit=2")) == ["two", "three"]
    assert texts(history(api, guild, "ann", as_user="user1")) == ["one", "two", "three", "four"]  # the owner


def test_a_user_who_never_joined_is_a_404_and_someone_else_is_a_403(api, problem):
    guild = make_guild()
    joined(guild, "ann")
    assert "has not joined" in str(problem(history(api, guild, "nobody", as_user="user1"), 404))
    problem(history(api, guild, "ann", as_user="mallory"), 403)
    problem(api.get("/api/guilds/nope/ann/messages", HTTP_X_USER_ID="ann"), 404)


@pytest.mark.parametrize("query", ["?limit=abc", "?limit=0", "?limit=-3", "?limit=1001", "?limit=%C2%B2",
                                   "?limit=%D9%A1", "?limit=" + "9" * 5000, "?since_id=xyz", "?since_id=-1"])
def test_bad_paging_parameters_are_a_400(api, problem, query):
    guild = make_guild()
    joined(guild, "ann")
    problem(history(api, guild, "ann", query), 400)
