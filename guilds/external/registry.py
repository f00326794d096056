"""Registering external agents, their keys, and the guilds that seat them.

An agent's key is an API key of its organisation scoped to it (ApiKey.agent_registration_id): REST and the
other sockets refuse it (guildsite.identity), only /ws/agents/ takes it. A guild seats an agent with a spec
agent of class EXTERNAL_CLASS whose properties name the registration; the registration must be in the guild's
organisation, checked when the guild is made.
"""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction
from django.utils import timezone

from guilds.models import ExternalAgent, ExternalSeat, Guild
from guildsite.accounts import services as accounts
from guildsite.accounts.models import ApiKey, Organization, Scope
from guildsite.accounts.tokens import CredentialError, looks_like_jwt, secret_hash

logger = logging.getLogger(__name__)

EXTERNAL_CLASS = "guilds.agents.external.ExternalAgent"
_LAST_USED_RESOLUTION = timedelta(seconds=60)


class TooMany(Exception):
    """The organisation has GUILDSITE_EXTERNAL_AGENTS_PER_ORG external agents already."""


class NotAnAgentKey(Exception):
    """A valid credential, but not an external agent's key (4403)."""


class SeatRefused(ValueError):
    """A spec seats an external agent that is not its guild's organisation's; `field` names the property."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


def external_agent_register(*, organization: Organization, created_by: AbstractBaseUser,
                            name: str) -> tuple[ExternalAgent, str]:
    """(the agent, its key). The key exists in clear only in this return value."""
    with transaction.atomic():
        # Locked, so two registrations at once cannot both pass the cap.
        Organization.objects.select_for_update().filter(pk=organization.pk).first()
        if ExternalAgent.objects.filter(organization=organization).count() >= settings.GUILDSITE_EXTERNAL_AGENTS_PER_ORG:
            raise TooMany(f"organisation {organization.pk} has {settings.GUILDSITE_EXTERNAL_AGENTS_PER_ORG} external "
                          f"agents already (GUILDSITE_EXTERNAL_AGENTS_PER_ORG): delete one first")
        agent = ExternalAgent.objects.create(organization=organization, created_by=created_by, name=name)
        _, key = accounts.api_key_create(organization=organization, created_by=created_by,
                                         name=f"external agent {name}", scopes=[Scope.WRITE],
                                         agent_registration_id=agent.pk)
    logger.info("external agent registered", extra={"organization_id": organization.pk, "external_agent_id": agent.pk})
    return agent, key


def external_agent_delete(*, agent: ExternalAgent) -> None:
    """Its keys revoked (a connected socket is closed at its next check), its queue and commands gone."""
    agent_id = agent.pk  # before the delete, which clears it
    with transaction.atomic():
        ApiKey.objects.filter(agent_registration_id=agent_id, revoked_at__isnull=True).update(revoked_at=timezone.now())
        agent.delete()
        transaction.on_commit(lambda: _revoked(agent_id))
    logger.info("external agent deleted", extra={"organization_id": agent.organization_id, "external_agent_id": agent_id})


def _revoked(agent_id: str) -> None:
    """Its open socket closes now, not at its next check."""
    from guilds.external import signals
    from guilds.runtime import loop as runtime_loop

    runtime_loop.run(signals.work_waits(agent_id, revoked=True))


def agent_for_credential(credential: str) -> ExternalAgent:
    """The external agent whose key this is. CredentialError when it is no valid credential at all (4401);
    NotAnAgentKey when it is a user's token or another kind of key (4403)."""
    if not credential:
        raise CredentialError("no key: connect with 'Authorization: Bearer <agent key>' or ?token=<agent key>")
    if looks_like_jwt(credential):
        raise NotAnAgentKey("a user's access token is not an agent key: use the key the registration returned")
    key = ApiKey.objects.select_related("created_by").filter(key_hash=secret_hash(credential)).first()
    if key is None:
        raise CredentialError("unknown key")
    now = timezone.now()
    if key.revoked_at is not None:
        raise CredentialError(f"the key {key.prefix}… was revoked")
    if key.expires_at is not None and key.expires_at <= now:
        raise CredentialError(f"the key {key.prefix}… expired")
    if not key.agent_registration_id:
        raise NotAnAgentKey(f"the key {key.prefix}… is an organisation's key, not an external agent's")
    if key.created_by is None or not key.created_by.is_active:
        raise CredentialError("the account behind this key is disabled")
    agent = ExternalAgent.objects.filter(pk=key.agent_registration_id, organization_id=key.organization_id).first()
    if agent is None:
        raise CredentialError("the key's external agent was deleted")
    if key.last_used_at is None or now - key.last_used_at >= _LAST_USED_RESOLUTION:
        ApiKey.objects.filter(pk=key.pk).update(last_used_at=now)
    return agent


def agent_still_admitted(agent_id: str, credential: str) -> None:
    """Raise as agent_for_credential does if the socket's key no longer admits `agent_id` (revoked, deleted)."""
    if agent_for_credential(credential).pk != agent_id:
        raise NotAnAgentKey("the key now belongs to another agent")


# --- seats -----------------------------------------------------------------------------


def seats_in(spec: dict[str, Any]) -> list[tuple[int, dict[str, Any]]]:
    """The spec's agents that seat an external agent, with their index in `agents`."""
    from guilds.runtime.registry import canonical_class_name

    agents = (spec or {}).get("agents") or []
    return [(index, agent) for index, agent in enumerate(agents)
            if isinstance(agent, dict) and canonical_class_name(str(agent.get("class_name", ""))) == EXTERNAL_CLASS]


def seats_checked(spec: dict[str, Any], organization_id: str | None) -> list[tuple[str, str, str]]:
    """(seat id, seat name, registration id) of each seat in `spec`; SeatRefused unless every one names an
    external agent of `organization_id`."""
    seats = []
    for index, agent in seats_in(spec):
        registration_id = str((agent.get("properties") or {}).get("registration_id", ""))
        exists = organization_id is not None and ExternalAgent.objects.filter(
            pk=registration_id, organization_id=organization_id).exists()
        if not exists:
            raise SeatRefused(f"spec.agents[{index}].properties.registration_id",
                              f"agent '{agent.get('id')}' names external agent '{registration_id}', which is not "
                              f"registered in organisation '{organization_id}'")
        seats.append((str(agent.get("id")), str(agent.get("name", "")), registration_id))
    return seats


def seats_record(guild: Guild) -> None:
    """Remember where the guild seats external agents (inside the transaction that stores the guild); SeatRefused
    if one is not of the guild's organisation."""
    ExternalSeat.objects.bulk_create([
        ExternalSeat(agent_id=registration_id, guild=guild, seat_id=seat_id, seat_name=seat_name)
        for seat_id, seat_name, registration_id in seats_checked(guild.spec, guild.organization_id)])


def seats_of(agent_id: str) -> list[ExternalSeat]:
    """Where the agent sits now (guilds not stopped), with each guild."""
    from guilds.models import GuildStatus

    return list(ExternalSeat.objects.select_related("guild").filter(agent_id=agent_id)
                .exclude(guild__status=GuildStatus.STOPPED).order_by("guild_id", "seat_id"))
