"""Builders for the rows tests need: users, organisations with members, blueprints, guilds, credentials.

Each builder makes what it is given (and what that needs) through the services, so rows are as
the site makes them. Names are plain so a failing test reads like the scenario it plays.
"""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal
from typing import Any

from django.contrib.auth import get_user_model

from catalog.models import Blueprint, Exposure
from catalog.services import blueprint_create
from guilds.models import Guild, GuildMember, GuildStatus, Run, Thread, ThreadMessage
from guilds.services import guild_create
from guilds.spec import validate_guild_spec
from guildsite.accounts.models import ApiKey, Membership, Organization, Role
from guildsite.accounts.services import api_key_create, user_get_or_create
from guildsite.accounts.tokens import access_token_encode

ECHO = "rustic_ai.core.agents.testutils.echo_agent.EchoAgent"
ECHO_SPEC: dict[str, Any] = {
    "name": "EchoTestBlueprint",
    "description": "Echo agent for integration testing",
    "agents": [{"name": "EchoAgent", "class_name": ECHO, "additional_topics": ["echo_topic"],
                "listen_to_default_topic": False}],
}


def user(username: str, *, password: str | None = None, staff: bool = False, superuser: bool = False):
    """The user (made on first use); a password or staff rights are set when given."""
    account = user_get_or_create(username)
    if password is not None or staff or superuser:
        if password is not None:
            account.set_password(password)
        account.is_staff = account.is_staff or staff or superuser
        account.is_superuser = account.is_superuser or superuser
        account.save()
    return account


_user = user  # for builders whose parameter is called `user`


def _in(account, found: Organization) -> None:
    Membership.objects.get_or_create(user=account, organization=found, defaults={"role": Role.MEMBER})


def organization(organization_id: str, **members: str) -> Organization:
    """`organization("org-a", alice="admin", bob="member")`: the organisation and its members (made as needed)."""
    found, _ = Organization.objects.get_or_create(id=organization_id, defaults={"name": organization_id})
    for username, role in members.items():
        Membership.objects.update_or_create(user=user(username), organization=found, defaults={"role": Role(role)})
    return found


def member(organization_id: str, username: str, role: str = Role.MEMBER):
    organization(organization_id, **{username: role})
    return get_user_model().objects.get(username=username)


def blueprint(*, author: str = "author", org: str = "org-a", exposure: str = Exposure.PRIVATE,
              spec: dict | None = None, name: str = "EchoTestBlueprint") -> Blueprint:
    writer, found = user(author), organization(org)
    _in(writer, found)
    return blueprint_create(name=name, author=writer, organization=found, exposure=exposure, spec=spec or ECHO_SPEC)


def guild(name: str = "G", *, org: str = "org1", user: str = "user1", status: str = GuildStatus.REQUESTED,
          spec: dict | None = None, launch: bool = False, **spec_properties: Any) -> Guild:
    """A guild launched by `user` (a member of `org`), stored with `status` and not running unless `launch`."""
    launcher, found = _user(user), organization(org)
    _in(launcher, found)
    spec = dict(spec or ECHO_SPEC)
    if spec_properties:
        spec["properties"] = {**spec.get("properties", {}), **spec_properties}
    made = guild_create(spec=validate_guild_spec(spec), name=name, launched_by=launcher, organization=found,
                        launch=launch)
    if status != GuildStatus.REQUESTED:
        Guild.objects.filter(pk=made.pk).update(status=status)
        made.refresh_from_db()
    return made


def joined(made: Guild, username: str) -> None:
    """`username` joined the guild (as the user socket records it)."""
    GuildMember.objects.get_or_create(guild=made, user=user(username))


def token(username: str, *, lifetime: timedelta | None = None) -> str:
    account = get_user_model().objects.get(username=username)
    return access_token_encode(user=account, lifetime=lifetime)[0]


def bearer(username: str) -> dict[str, str]:
    """Headers for the DRF test client: `api.get(url, **bearer("alice"))`."""
    return {"HTTP_AUTHORIZATION": f"Bearer {token(username)}"}


def api_key(org: str, username: str, *, scopes: list[str] | None = None, **fields: Any) -> tuple[ApiKey, str]:
    return api_key_create(organization=organization(org), created_by=get_user_model().objects.get(username=username),
                          name=f"{username}'s key", scopes=scopes or ["write"], **fields)


def thread(made: Guild, username: str, *, agent_id: str = "llm", conversation_id: str = "", title: str = "") -> Thread:
    """`username`'s thread with an agent of the guild, as the LLM agent opens one."""
    return Thread.objects.create(guild=made, agent_id=agent_id, requester=username, user=user(username),
                                 organization_id=made.organization_id, conversation_id=conversation_id, title=title)


def thread_message(of: Thread, role: str, content: str, **fields: Any) -> ThreadMessage:
    return ThreadMessage.objects.create(thread=of, role=role, content=content, **fields)


def run(made: Guild, *, agent_id: str = "llm", of: Thread | None = None, **fields: Any) -> Run:
    """A run of the guild's agent (finished, with figures, unless `fields` say otherwise)."""
    values: dict[str, Any] = {"status": "succeeded", "model": "gpt-4o-mini", "input_tokens": 10, "output_tokens": 5,
                              "cached_tokens": 0, "cost_usd": Decimal("0.001")}
    values.update(fields)
    return Run.objects.create(guild=made, agent_id=agent_id, thread=of, **values)
