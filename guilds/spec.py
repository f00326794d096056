"""GuildSpec and AgentSpec: what a blueprint holds and a guild runs.

Validation is the same everywhere a spec enters (REST, admin, launch): `validate_guild_spec`
returns a GuildSpec or raises SpecError whose `errors` map dotted field paths to messages.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from guilds.engines.names import UnknownEngine, resolve_engine_name
from guilds.runtime.agent import PropertiesError
from guilds.runtime.registry import AgentClassError, canonical_class_name, resolve_agent_class
from guilds.sender_ids import SCHEDULE_SENDER_PREFIX, TRIGGER_SENDER_PREFIX
from guildsite.public_ids import new_public_id
from messaging.config import MessagingConfig, resolve_backend_class
from messaging.errors import UnknownBackend
from messaging.message import RoutingSlip


class SpecError(ValueError):
    def __init__(self, errors: dict[str, list[str]]):
        self.errors = errors
        first_field, messages = next(iter(errors.items()))
        super().__init__(f"{first_field}: {messages[0]}")


class AgentSpec(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    id: str = Field(default_factory=lambda: new_public_id(12), min_length=1, max_length=128, pattern=r"^[^:\s]+$")
    name: str = Field(min_length=1, max_length=64)
    description: str = ""
    class_name: str = Field(min_length=1, max_length=512)
    additional_topics: list[str] = Field(default_factory=list)
    properties: dict[str, Any] = Field(default_factory=dict)
    listen_to_default_topic: bool = True
    act_only_when_tagged: bool = False
    # Accepted for compatibility with the original system's specs; stored as given.
    predicates: dict[str, Any] = Field(default_factory=dict)
    dependency_map: dict[str, Any] = Field(default_factory=dict)
    additional_dependencies: list[str] = Field(default_factory=list)
    resources: dict[str, Any] = Field(default_factory=dict)
    qos: dict[str, Any] = Field(default_factory=dict)

    @field_validator("additional_topics")
    @classmethod
    def _topics_non_empty(cls, topics: list[str]) -> list[str]:
        for topic in topics:
            if not topic or not topic.strip():
                raise ValueError("topics must be non-empty strings")
        return [t.strip() for t in topics]

    @model_validator(mode="after")
    def _class_is_an_agent(self) -> AgentSpec:
        try:
            agent_class = resolve_agent_class(self.class_name)
        except AgentClassError as exc:
            raise ValueError(str(exc)) from None
        agent_class.validate_properties(self.properties)
        return self


# Ids and classes the guild itself uses for its manager and its users' proxies.
RESERVED_AGENT_IDS = ("guild_manager",)
USER_PROXY_ID_PREFIX = "upa-"
RESERVED_ID_PREFIXES = (USER_PROXY_ID_PREFIX, SCHEDULE_SENDER_PREFIX, TRIGGER_SENDER_PREFIX)
SYSTEM_CLASSES = frozenset({"guilds.runtime.manager.GuildManagerAgent", "guilds.runtime.user_proxy.UserProxyAgent"})


def _spec_agent_allowed(agent: AgentSpec) -> None:
    if agent.id in RESERVED_AGENT_IDS or agent.id.startswith(RESERVED_ID_PREFIXES):
        raise ValueError(f"agent id '{agent.id}' is reserved (the guild manager, users' proxies, schedules and triggers "
                         f"use ids like it: {', '.join([*RESERVED_AGENT_IDS, *(p + '…' for p in RESERVED_ID_PREFIXES)])})")
    if canonical_class_name(agent.class_name) in SYSTEM_CLASSES:
        raise ValueError(f"'{agent.class_name}' is started by the guild itself and cannot be listed in a spec")


_SPEC_REDIS_KEYS = {"redis_client", "url"}
_SPEC_REDIS_CLIENT_KEYS = {"host", "port", "ssl", "username", "password", "db"}


def _redis_allowed(config: MessagingConfig) -> None:
    """A spec may name a Redis, but only one the site allows (GUILDSITE_SPEC_REDIS_ALLOWED and the
    site's own): a blueprint must not make the server connect wherever it likes."""
    from urllib.parse import urlparse

    from django.conf import settings

    if not config.is_redis:
        return
    extra = set(config.backend_config) - _SPEC_REDIS_KEYS
    if extra:
        raise ValueError(f"backend_config keys {sorted(extra)} are the site's to set; a spec may give "
                         f"{sorted(_SPEC_REDIS_KEYS)}")
    if "url" in config.backend_config:
        parsed = urlparse(str(config.backend_config["url"]))
        host, port = parsed.hostname or "", parsed.port or 6379
    else:
        client = config.backend_config.get("redis_client") or {}
        unknown = set(client) - _SPEC_REDIS_CLIENT_KEYS
        if unknown:
            raise ValueError(f"redis_client keys {sorted(unknown)} are not accepted in a spec")
        host, port = str(client.get("host", "localhost")), int(client.get("port", 6379))
    allowed = set(settings.GUILDSITE_SPEC_REDIS_ALLOWED)
    if settings.REDIS_URL:
        site = urlparse(settings.REDIS_URL)
        allowed.add(f"{site.hostname}:{site.port or 6379}")
    if f"{host}:{port}" not in allowed:
        raise ValueError(f"Redis at {host}:{port} is not one this site allows for guilds "
                         f"(GUILDSITE_SPEC_REDIS_ALLOWED: {', '.join(sorted(allowed))})")


class GuildProperties(BaseModel):
    model_config = ConfigDict(extra="allow")

    messaging: MessagingConfig | None = None
    execution_engine: str | None = None

    @field_validator("messaging")
    @classmethod
    def _known_backend(cls, config: MessagingConfig | None) -> MessagingConfig | None:
        if config is not None:
            try:
                resolve_backend_class(config)
            except UnknownBackend as exc:
                raise ValueError(str(exc)) from None
            _redis_allowed(config)
        return config

    @field_validator("execution_engine")
    @classmethod
    def _known_engine(cls, name: str | None) -> str | None:
        try:
            resolve_engine_name(name)
        except UnknownEngine as exc:
            raise ValueError(str(exc)) from None
        return name


class GuildSpec(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    id: str | None = None
    name: str = Field(min_length=1, max_length=64)
    description: str = ""
    properties: GuildProperties = Field(default_factory=GuildProperties)
    agents: list[AgentSpec] = Field(default_factory=list)
    dependency_map: dict[str, Any] = Field(default_factory=dict)
    routes: RoutingSlip = Field(default_factory=RoutingSlip)
    gateway: dict[str, Any] | None = None
    # Blueprint-only keys of the original system, kept with the spec.
    configuration_schema: dict[str, Any] | None = None
    configuration: dict[str, Any] | None = None

    @model_validator(mode="after")
    def _unique_agents(self) -> GuildSpec:
        seen_ids: set[str] = set()
        seen_names: set[str] = set()
        for agent in self.agents:
            _spec_agent_allowed(agent)
            if agent.id in seen_ids:
                raise ValueError(f"two agents share the id '{agent.id}'")
            if agent.name in seen_names:
                raise ValueError(f"two agents share the name '{agent.name}'")
            seen_ids.add(agent.id)
            seen_names.add(agent.name)
        return self


def _path(loc: tuple) -> str:
    return ".".join(str(part) for part in loc) or "spec"


def validate_guild_spec(data: Any, *, prefix: str = "spec") -> GuildSpec:
    if not isinstance(data, dict):
        raise SpecError({prefix: ["must be a JSON object with name, description and agents"]})
    try:
        return GuildSpec.model_validate(data)
    except ValidationError as exc:
        errors: dict[str, list[str]] = {}
        for error in exc.errors(include_url=False):
            field = f"{prefix}.{_path(error['loc'])}" if error["loc"] else prefix
            cause = (error.get("ctx") or {}).get("error")
            if isinstance(cause, PropertiesError):  # name the property itself (spec.agents.0.properties.base_url)
                for name, messages in cause.fields.items():
                    errors.setdefault(f"{field}.properties" + (f".{name}" if name else ""), []).extend(messages)
                continue
            message = error["msg"].removeprefix("Value error, ")
            errors.setdefault(field, []).append(message)
        raise SpecError(errors) from None
