"""Account reads for the API, the pages and the admin."""

from __future__ import annotations

from django.db.models import QuerySet

from guildsite import permissions
from guildsite.accounts.models import ApiKey, Membership, Organization, Role
from guildsite.identity import Actor


def organization_list(*, actor: Actor) -> QuerySet[Organization]:
    """The organisations the actor belongs to (every one for a superuser)."""
    organizations = Organization.objects.all()
    if permissions.sees_every_organization(actor):
        return organizations
    return organizations.filter(pk__in=list(permissions.roles(actor)))


def organization_get(*, actor: Actor, organization_id: str) -> tuple[Organization, str]:
    """(organisation, the actor's role there); permissions.NotFound when the actor is not in it."""
    role = permissions.organization_read_check(actor, organization_id)
    organization = Organization.objects.filter(pk=organization_id).first()
    if organization is None:
        raise permissions.NotFound(f"organisation '{organization_id}' not found")
    return organization, role


def membership_list(*, organization: Organization) -> QuerySet[Membership]:
    return Membership.objects.filter(organization=organization).select_related("user").order_by("user__username")


def membership_get(*, organization: Organization, username: str) -> Membership:
    membership = membership_list(organization=organization).filter(user__username=username).first()
    if membership is None:
        raise permissions.NotFound(f"'{username}' is not in {organization.pk}")
    return membership


def api_key_list(*, actor: Actor, organization: Organization, role: str) -> QuerySet[ApiKey]:
    """Admins see every key of the organisation; others their own."""
    keys = ApiKey.objects.filter(organization=organization).select_related("created_by")
    return keys if role == Role.ADMIN else keys.filter(created_by=actor.user)
