"""Which live topics a caller may follow on `/api/ws`: each is checked as REST checks reading the same thing.

  user:{username}             the caller's own only
  thread:{id}                 the caller's own thread (GET /api/threads/{id})
  agent:{guild_id}:{agent_id} an agent of a guild the caller sees (users' proxies are not agents here)
  guild:{id}                  a guild the caller sees (GET /api/guilds/{id})
  org:{id}                    an organisation the caller belongs to

Another organisation's anything, and anything that does not exist, is refused alike (`not_found`), so a
refusal tells nothing about what is there.
"""

from __future__ import annotations

from guilds import selectors
from guilds.models import AgentKind, Guild, GuildAgent
from guilds.runtime import live
from guildsite import permissions
from guildsite.identity import Actor

TOPIC_MAX_CHARS = 300

NOT_FOUND = "not_found"
FORBIDDEN = "forbidden"
INVALID_TOPIC = "invalid_topic"
TOO_MANY_TOPICS = "too_many_topics"
UNAVAILABLE = "unavailable"
RATE_LIMITED = "rate_limited"

KINDS = "user:{username}, thread:{id}, agent:{guild_id}:{agent_id}, guild:{id}, org:{id}"


class TopicRefused(Exception):
    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


def is_topic(value: object) -> bool:
    return isinstance(value, str) and 0 < len(value) <= TOPIC_MAX_CHARS and value.isprintable() and " " not in value


def authorise(actor: Actor, topic: str) -> None:
    """Raise TopicRefused unless `actor` may follow `topic` (blocking: it reads the database)."""
    if not is_topic(topic):
        raise TopicRefused(INVALID_TOPIC, f"a topic is a string of 1-{TOPIC_MAX_CHARS} printable characters "
                                          f"without spaces, one of {KINDS}")
    kind, _, rest = topic.partition(":")
    try:
        if kind == "user":
            if not rest or rest != actor.username:
                raise permissions.NotFound(f"topic '{topic}' not found: user:{{username}} is your own only")
        elif kind == "thread" and rest:
            selectors.thread_for(actor, rest)
        elif kind == "guild" and rest:
            selectors.guild_for(actor, rest)
        elif kind == "agent" and rest.count(":") == 1 and all(rest.split(":")):
            guild_id, agent_id = rest.split(":")
            _agent_check(selectors.guild_for(actor, guild_id), agent_id)
        elif kind == "org" and rest:
            permissions.organization_follow_check(actor, rest)
        else:
            raise TopicRefused(INVALID_TOPIC, f"unknown topic '{topic}': topics are {KINDS}")
    except permissions.NotFound as exc:
        raise TopicRefused(NOT_FOUND, str(exc)) from None
    except permissions.Forbidden as exc:
        raise TopicRefused(FORBIDDEN, str(exc)) from None


def _agent_check(guild: Guild, agent_id: str) -> None:
    in_spec = any(isinstance(agent, dict) and agent.get("id") == agent_id
                  for agent in (guild.spec or {}).get("agents") or [])
    if live.is_user_proxy(agent_id) or not (in_spec or GuildAgent.objects.filter(
            guild=guild, agent_id=agent_id).exclude(kind=AgentKind.HUMAN).exists()):
        raise permissions.NotFound(f"agent '{agent_id}' of guild '{guild.pk}' not found")
