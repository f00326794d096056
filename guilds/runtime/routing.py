"""Where a message goes next: the one place that answers it.

An agent's outgoing message is routed by the routing slip of the message it is handling:
every applicable rule fires (fan-out), each sending to its destination and using one of
its `route_times` (negative = unlimited). With no applicable rule an explicit `topics`
argument wins, and otherwise the message goes back to where the request came from:
the requester's inbox.

A user's message (forwarded by the user's proxy) with no explicit topics and no
applicable guild route goes to the default topic and to the topics of every agent that
does not listen to the default topic, so each agent in the guild sees it once.
"""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass

from guilds.runtime.registry import canonical_class_name
from messaging import topics as topic_names
from messaging.message import AgentTag, Message, RoutingRule, RoutingSlip


@dataclass(frozen=True)
class Sender:
    """The agent that sends: what rules are matched against."""

    tag: AgentTag
    class_name: str
    method_name: str | None


@dataclass(frozen=True)
class Destination:
    topics: list[str]
    recipient_list: list[AgentTag]
    priority: int | None
    forwarded: bool
    routing_slip: RoutingSlip | None


def _agent_type_matches(pattern: str, class_name: str) -> bool:
    wanted = canonical_class_name(pattern)
    actual = canonical_class_name(class_name)
    if any(ch in wanted for ch in "*?["):
        return fnmatch.fnmatchcase(actual, wanted) or fnmatch.fnmatchcase(class_name, pattern)
    return wanted == actual


def rule_applies(rule: RoutingRule, *, sender: Sender, origin: Message | None, message_format: str) -> bool:
    if rule.route_times == 0:
        return False
    if rule.agent is not None and not rule.agent.matches(sender.tag):
        return False
    if rule.agent_type is not None and not _agent_type_matches(rule.agent_type, sender.class_name):
        return False
    if rule.method_name is not None and rule.method_name != sender.method_name:
        return False
    if rule.message_format is not None and rule.message_format != message_format:
        return False
    if rule.origin_filter is not None:
        flt = rule.origin_filter
        if origin is None:
            return False
        if flt.origin_sender is not None and not flt.origin_sender.matches(origin.sender):
            return False
        if flt.origin_topic is not None and flt.origin_topic != origin.topic_published_to:
            return False
        if flt.origin_message_format is not None and flt.origin_message_format != origin.format:
            return False
    return True


def _spent(slip: RoutingSlip, used: RoutingRule) -> RoutingSlip:
    """The slip after `used` fired once: its count drops, and it leaves the slip at zero."""
    steps: list[RoutingRule] = []
    for rule in slip.steps:
        if rule is used and rule.route_times > 0:
            if rule.route_times == 1:
                continue
            rule = rule.model_copy(update={"route_times": rule.route_times - 1})
        steps.append(rule)
    return RoutingSlip(steps=steps)


def _as_list(value: str | list[str] | None) -> list[str]:
    if value is None:
        return []
    return [value] if isinstance(value, str) else list(value)


def route(
    *,
    sender: Sender,
    origin: Message | None,
    slip: RoutingSlip | None,
    message_format: str,
    explicit_topics: list[str] | None,
    default_topics: list[str],
) -> list[Destination]:
    """The destinations of one outgoing message (one per applicable rule, else one default)."""
    destinations: list[Destination] = []
    if slip is not None and slip.steps:
        for rule in slip.steps:
            if not rule_applies(rule, sender=sender, origin=origin, message_format=message_format):
                continue
            remaining = _spent(slip, rule)
            dest = rule.destination
            topics = _as_list(dest.topics) if dest else []
            destinations.append(
                Destination(
                    topics=topics or explicit_topics or default_topics,
                    recipient_list=list(dest.recipient_list) if dest else [],
                    priority=dest.priority if dest else None,
                    forwarded=rule.mark_forwarded,
                    routing_slip=remaining,
                )
            )
    if destinations:
        return destinations
    return [
        Destination(
            topics=explicit_topics or default_topics,
            recipient_list=[],
            priority=None,
            forwarded=False,
            routing_slip=slip,
        )
    ]


def back_to_requester(origin: Message | None) -> list[str]:
    """Where a reply goes when nothing else says: the inbox of whoever sent the request."""
    if origin is None or not origin.sender.id:
        return [topic_names.DEFAULT_TOPIC]
    return [topic_names.agent_inbox(origin.sender.id)]


def user_message_fanout(agent_specs: list) -> list[str]:
    """Topics a user's message goes to when neither the user nor a route names any."""
    topics = [topic_names.DEFAULT_TOPIC]
    for spec in agent_specs:
        if not spec.listen_to_default_topic:
            for topic in spec.additional_topics or [topic_names.agent_inbox(spec.id)]:
                if topic not in topics:
                    topics.append(topic)
    return topics
