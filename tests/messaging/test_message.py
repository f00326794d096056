"""The Message model: schema, leniency on input, exact output, typed errors, JSON round trips."""

from __future__ import annotations

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from messaging.errors import InvalidMessage
from messaging.ids import EPOCH_MS, MAX_ID, Priority, decode_id, encode_id, new_id
from messaging.message import (
    AgentTag,
    ForwardHeader,
    Message,
    ProcessEntry,
    RoutingDestination,
    RoutingRule,
    RoutingSlip,
)

SEED_002_FIELDS = {
    "id", "sender", "topics", "payload", "format", "priority", "timestamp", "thread", "recipient_list",
    "in_response_to", "conversation_id", "forward_header", "routing_slip", "message_history", "ttl",
    "is_error_message", "traceparent", "session_state", "topic_published_to", "enrich_with_history",
}


def make(**fields):
    base = {"sender": {"id": "a1", "name": "Agent"}, "topics": "updates", "payload": {"text": "hi"}}
    return Message.create(**{**base, **fields})


def test_every_seed_field_is_on_the_wire():
    wire = make().to_wire()
    assert SEED_002_FIELDS <= set(wire)
    assert set(wire) - SEED_002_FIELDS == {"client_message_id"}


def test_defaults_come_from_the_id():
    m = make(priority=Priority.HIGH)
    parts = decode_id(m.id)
    assert m.priority == parts.priority == 2
    assert m.timestamp == parts.timestamp_ms
    assert m.thread == [m.id]
    assert m.current_thread_id == m.root_thread_id == m.id
    assert m.format == "generic_json"


def test_wire_form_uses_string_ids_and_integer_time():
    origin = new_id()
    m = make(
        in_response_to=origin,
        thread=[origin],
        forward_header={"origin_message_id": origin, "on_behalf_of": {"id": "u"}},
        message_history=[{"agent": {"id": "x"}, "origin": origin, "result": origin, "processor": "p"}],
    )
    wire = orjson.loads(m.to_json())
    assert wire["id"] == str(m.id)
    assert wire["in_response_to"] == str(origin)
    assert wire["thread"] == [str(origin)]
    assert wire["forward_header"]["origin_message_id"] == str(origin)
    assert wire["message_history"][0]["origin"] == str(origin)
    assert wire["message_history"][0]["result"] == str(origin)
    assert isinstance(wire["timestamp"], int)
    assert isinstance(wire["priority"], int)
    assert m.to_wire() == wire
    python = m.model_dump()
    assert python["id"] == m.id
    assert isinstance(python["thread"][0], int)


def test_ids_accepted_as_ints_or_strings():
    m = make()
    wire = m.to_wire()
    assert Message.from_wire(wire) == m
    assert Message.from_wire({**wire, "id": m.id, "thread": [m.id]}) == m


def test_seed_000_client_frame_leniency():
    # seed 000's frame: ISO timestamp, conversationId; the server supplies a real id.
    m = Message.create(
        sender={"id": "testuser123", "name": "Test User"},
        topics=["user:testuser123:inbox"],
        payload={"text": "Hello Echo!"},
        format="text",
        conversationId="conv_789",
        timestamp="2025-01-15T10:00:00.000Z",
        client_message_id="msg123",
    )
    assert m.conversation_id == "conv_789"
    assert m.timestamp == 1736935200000
    assert m.client_message_id == "msg123"
    assert orjson.loads(m.to_json())["conversation_id"] == "conv_789"


@pytest.mark.parametrize(
    ("given_ts", "expected"),
    [
        (1642234567890, 1642234567890),
        (1642234567890.7, 1642234567890),
        (1642234567.890, 1642234567890),  # seconds
        ("2022-01-15T08:16:07.890+00:00", 1642234567890),
        ("2022-01-15T08:16:07.890", 1642234567890),  # naive: UTC
        ("1642234567890", 1642234567890),
    ],
)
def test_timestamp_forms(given_ts, expected):
    assert make(timestamp=given_ts).timestamp == expected


def test_integer_conversation_id_becomes_string():
    assert make(conversation_id=42).conversation_id == "42"


def test_priority_must_agree_with_id():
    m = make()
    with pytest.raises(InvalidMessage, match="priority"):
        Message.from_wire({**m.to_wire(), "priority": 0})
    explicit = encode_id(EPOCH_MS + 10, 2, 5, 0)
    assert Message.create(sender={"id": "a"}, topics="t", payload={}, id=explicit).priority == 2


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"topics": []}, "topics"),
        ({"topics": ""}, "topics"),
        ({"topics": ["ok", ""]}, "topics"),
        ({"payload": [1, 2]}, "payload"),
        ({"sender": "someone"}, "sender"),
        ({"id": "msg123"}, "id"),
        ({"id": True}, "id"),
        ({"id": -3}, "id"),
        ({"id": str(MAX_ID + 1)}, "id"),
        ({"unknown_field": 1}, "unknown_field"),
        ({"timestamp": "yesterday"}, "timestamp"),
        ({"enrich_with_history": -1}, "enrich_with_history"),
        ({"in_response_to": "abc"}, "in_response_to"),
    ],
)
def test_invalid_input_raises_invalid_message(change, field):
    wire = {**make().to_wire(), **change}
    with pytest.raises(InvalidMessage) as info:
        Message.from_wire(wire)
    assert field in str(info.value)
    assert any(loc.startswith(field) for loc, _ in info.value.errors)
    assert "pydantic" not in str(info.value)


def test_invalid_json_and_non_objects():
    with pytest.raises(InvalidMessage):
        Message.from_json(b"{not json")
    with pytest.raises(InvalidMessage):
        Message.from_json(b"[1, 2]")
    with pytest.raises(InvalidMessage):
        Message.from_wire(["not", "a", "dict"])  # type: ignore[arg-type]
    with pytest.raises(InvalidMessage, match="priority"):
        make(priority=9)


def test_agent_tag_partial_match():
    assert AgentTag(name="EchoAgent").matches(AgentTag(id="x", name="EchoAgent"))
    assert not AgentTag(id="y", name="EchoAgent").matches(AgentTag(id="x", name="EchoAgent"))
    assert AgentTag().matches(AgentTag(id="anything"))
    assert not AgentTag(id="x").matches(None)
    m = make(recipient_list=[{"name": "EchoAgent"}])
    assert m.is_tagged(AgentTag(id="e1", name="EchoAgent"))
    assert not m.is_tagged(AgentTag(id="e1", name="Other"))


def test_routing_rule_validation_and_aliases():
    with pytest.raises(ValueError, match="agent"):
        RoutingRule(destination={"topics": "x"})
    rule = RoutingRule.model_validate({"agent": {"name": "echo_agent"}, "destination": {"topic": "echo_topic"}})
    assert rule.destination is not None
    assert rule.destination.topics == "echo_topic"
    assert rule.destination.topic_list == ["echo_topic"]
    assert RoutingDestination.model_validate({"topics": ["a", "b"]}).topic_list == ["a", "b"]
    upstream = {
        "agent_type": "rustic_ai.core.agents.utils.user_proxy_agent.UserProxyAgent",
        "method_name": "unwrap_and_forward_message",
        "destination": {"topics": "echo_topic"},
        "route_times": 1,
    }
    rule = RoutingRule.model_validate(upstream)
    assert not rule.is_exhausted()
    spent = rule.used_once()
    assert spent.is_exhausted()
    assert not rule.is_exhausted()
    unlimited = RoutingRule(agent=AgentTag(name="e"), route_times=-1)
    assert unlimited.is_unlimited()
    assert unlimited.used_once() is unlimited
    slip = RoutingSlip(steps=[rule, spent])
    assert slip.active_steps() == [rule]


def test_message_with_routing_slip_round_trips():
    slip = RoutingSlip(steps=[RoutingRule(agent=AgentTag(name="echo"), destination=RoutingDestination(topics="t"))])
    m = make(routing_slip=slip, forward_header=ForwardHeader(origin_message_id=new_id(), on_behalf_of=AgentTag(id="u")))
    assert Message.from_json(m.to_json()) == m


def test_clone_shares_nothing():
    m = make(payload={"deep": {"list": [1]}}, session_state={"k": [1]}, topics=["a", "b"])
    c = m.clone()
    assert c == m
    assert c is not m
    c.payload["deep"]["list"].append(2)
    c.session_state["k"].append(2)
    c.topics.append("z")
    c.sender.name = "changed"
    assert m.payload == {"deep": {"list": [1]}}
    assert m.session_state == {"k": [1]}
    assert m.topics == ["a", "b"]
    assert m.sender.name == "Agent"


def test_topic_list():
    assert make(topics="one").topic_list == ["one"]
    assert make(topics=["one", "two"]).topic_list == ["one", "two"]


# --- property-based round trips -----------------------------------------------------

ids_st = st.integers(min_value=0, max_value=MAX_ID)
text_st = st.text(min_size=1, max_size=12)
json_leaf = st.none() | st.booleans() | st.integers(-(2**53), 2**53) | st.text(max_size=10)
json_value = st.recursive(
    json_leaf,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
    max_leaves=8,
)
tags = st.builds(AgentTag, id=st.none() | text_st, name=st.none() | text_st)
entries = st.builds(
    ProcessEntry, agent=tags, origin=ids_st, result=ids_st, processor=text_st,
    from_topic=st.none() | text_st, to_topics=st.lists(text_st, max_size=2),
)


@st.composite
def messages(draw):
    message_id = draw(ids_st)
    return Message.from_wire(
        {
            "id": draw(st.sampled_from([message_id, str(message_id)])),
            "sender": draw(tags).model_dump(),
            "topics": draw(text_st | st.lists(text_st, min_size=1, max_size=3)),
            "payload": draw(st.dictionaries(st.text(max_size=6), json_value, max_size=4)),
            "format": draw(text_st),
            "thread": draw(st.lists(ids_st, max_size=3)),
            "in_response_to": draw(st.none() | ids_st),
            "conversation_id": draw(st.none() | text_st),
            "recipient_list": [t.model_dump() for t in draw(st.lists(tags, max_size=2))],
            "message_history": [e.model_dump() for e in draw(st.lists(entries, max_size=2))],
            "ttl": draw(st.none() | st.integers(0, 10**6)),
            "is_error_message": draw(st.booleans()),
            "session_state": draw(st.none() | st.dictionaries(st.text(max_size=5), json_value, max_size=3)),
            "enrich_with_history": draw(st.integers(0, 5)),
            "client_message_id": draw(st.none() | text_st),
        }
    )


@settings(max_examples=150, deadline=None)
@given(messages())
def test_json_round_trip(m):
    data = m.to_json()
    assert Message.from_json(data) == m
    wire = orjson.loads(data)
    assert wire["id"] == str(m.id)
    assert all(isinstance(t, str) for t in wire["thread"])
    assert isinstance(wire["timestamp"], int)
    # ints are accepted back in place of the strings
    wire["id"] = m.id
    wire["thread"] = [int(t) for t in wire["thread"]]
    if wire["in_response_to"] is not None:
        wire["in_response_to"] = int(wire["in_response_to"])
    assert Message.from_wire(wire) == m


def test_direct_construction_raises_invalid_message_once_wrapped():
    with pytest.raises(InvalidMessage) as info:
        Message(id="nope", sender={}, topics="t", payload={})
    assert str(info.value).startswith("invalid message: id:")
    with pytest.raises(InvalidMessage) as info:
        Message.from_wire({"id": "nope", "sender": {}, "topics": "t", "payload": {}})
    assert str(info.value).startswith("invalid message: id:")  # not wrapped twice


def test_parts_passed_as_objects_are_not_shared():
    tag = AgentTag(id="agent-1", name="Agent")
    slip = RoutingSlip(steps=[RoutingRule(agent=AgentTag(name="x"))])
    m = Message.create(sender=tag, topics="t", payload={}, routing_slip=slip)
    assert m.sender == tag
    assert m.sender is not tag
    assert m.routing_slip is not slip
    m.sender.name = "changed"
    assert tag.name == "Agent"
