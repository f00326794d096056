"""Reads for the catalog pages: the rows of the blueprints list, each with what the viewer may do with it and
what launching it needs. Everything goes through the permission layer, as the REST API's reads do."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from catalog import needs as catalog_needs
from catalog import selectors as catalog
from catalog.models import Blueprint
from guildsite import permissions
from guildsite.identity import Actor

BLUEPRINTS_SHOWN = 500
NEED_LABELS = {catalog_needs.REDIS: "Redis"}


@dataclass
class BlueprintRow:
    blueprint: Blueprint
    changeable: bool
    shared_with: list[str] = field(default_factory=list)
    needs: list[str] = field(default_factory=list)


def blueprint_needs(spec: Any) -> list[str]:
    """What launching it needs beyond the site's defaults, in words ("Redis"): catalog.needs decides, as for the API."""
    return [NEED_LABELS.get(need, need) for need in catalog_needs.blueprint_needs(spec)]


def blueprint_changeable(actor: Actor, blueprint: Blueprint) -> bool:
    try:
        permissions.blueprint_change_check(actor, blueprint)
    except permissions.PermissionProblem:
        return False
    return True


def visible_shared_with(actor: Actor, blueprint: Blueprint, *, changeable: bool) -> list[str]:
    """As the API's detail says it: all of them for those who may change it, else only the viewer's own."""
    shared = sorted(organization.pk for organization in blueprint.shared_with.all())
    if changeable:
        return shared
    return [organization for organization in shared if organization in permissions.roles(actor)]


def catalog_blueprint_rows(*, actor: Actor) -> list[BlueprintRow]:
    """The blueprints the viewer may read, newest first (the API's list, with its specs for "needs")."""
    blueprints = catalog.blueprint_list(actor=actor).select_related("organization").prefetch_related("shared_with")
    rows = []
    for blueprint in blueprints[:BLUEPRINTS_SHOWN]:
        changeable = permissions.may_change_readable_blueprint(actor, blueprint)  # readable: it is in the list
        rows.append(BlueprintRow(blueprint=blueprint, changeable=changeable,
                                 shared_with=visible_shared_with(actor, blueprint, changeable=changeable),
                                 needs=blueprint_needs(blueprint.spec)))
    return rows
