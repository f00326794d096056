"""What the store may do for a user's proxy (durable delivery's stand-in): exactly the proxy's own handling."""

from __future__ import annotations

from guilds.runtime import formats
from guilds.runtime.user_proxy import passed_on_by_proxies
from messaging import topics as t
from messaging.message import AgentTag, Message


def message(topics: list[str], sender: str = "echo", format: str = "text") -> Message:
    return Message.create(sender=AgentTag(id=sender, name=sender), topics=topics, payload={"text": "hi"},
                          format=format)


def test_a_reply_to_a_proxy_is_passed_on_unchanged_to_its_users_notifications():
    reply = message([t.agent_inbox("upa-ann"), "elsewhere"])
    [(topic, proxy, copy_topic, copy)] = passed_on_by_proxies(reply)
    assert (topic, proxy, copy_topic) == (t.agent_inbox("upa-ann"), "upa-ann", t.user_notifications("ann"))
    assert copy.topics == [t.user_notifications("ann")]
    assert copy.model_dump(exclude={"topics"}) == reply.model_dump(exclude={"topics"})


def test_each_proxy_among_the_topics_gets_its_own_copy():
    passed = passed_on_by_proxies(message([t.agent_inbox("upa-ann"), t.agent_inbox("upa-bob")]))
    assert [(proxy, copy.topics) for _, proxy, _, copy in passed] == [
        ("upa-ann", [t.user_notifications("ann")]), ("upa-bob", [t.user_notifications("bob")])]


def test_nothing_is_done_for_a_proxy_whose_handling_would_differ():
    assert passed_on_by_proxies(message([t.agent_inbox("echo")])) == []  # not a proxy
    assert passed_on_by_proxies(message([t.agent_inbox("upa-ann")], sender="upa-ann")) == []  # its own
    assert passed_on_by_proxies(message([t.agent_inbox("upa-ann")], format=formats.HEALTH_CHECK_REQUEST)) == []
    # The same message on another of the proxy's topics: the proxy handles it once, as that topic may give it.
    for other in (t.user_inbox("ann"), t.USER_MESSAGE_BROADCAST, t.agent_self_inbox("upa-ann")):
        assert passed_on_by_proxies(message([t.agent_inbox("upa-ann"), other])) == []
    # Its own copy goes to the user's notifications already (storing the proxy's there first would replace it).
    assert passed_on_by_proxies(message([t.agent_inbox("upa-ann"), t.user_notifications("ann")])) == []
    # To be enriched with its history on the way: the proxy's copy may carry it.
    enriched = message([t.agent_inbox("upa-ann")]).model_copy(update={"enrich_with_history": 2})
    assert passed_on_by_proxies(enriched) == []
