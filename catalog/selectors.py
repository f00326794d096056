"""Catalog reads. Each list is one query (the related category comes by join)."""

from __future__ import annotations

from collections.abc import Iterable

from django.db.models import QuerySet

from catalog.models import AgentEntry, Blueprint, Category
from guildsite import permissions
from guildsite.identity import Actor


def agent_entry_list(*, class_names: Iterable[str] = ()) -> QuerySet[AgentEntry]:
    entries = AgentEntry.objects.all()
    names = [name for name in class_names if name]
    if names:
        entries = entries.filter(qualified_class_name__in=names)
    return entries


def agent_entry_get(*, qualified_class_name: str) -> AgentEntry | None:
    return AgentEntry.objects.filter(qualified_class_name=qualified_class_name).first()


def category_list(*, actor: Actor) -> QuerySet[Category]:
    return permissions.category_queryset(actor, Category.objects.all())


def category_get(*, actor: Actor, category_id: str) -> Category | None:
    return category_list(actor=actor).filter(pk=category_id).first()


def blueprint_list(
    *, actor: Actor, category_id: str | None = None, organization_id: str | None = None, author_id: str | None = None
) -> QuerySet[Blueprint]:
    """The blueprints the actor may read, newest first."""
    blueprints = permissions.blueprint_queryset(actor, Blueprint.objects.select_related("category", "author"))
    if category_id:
        blueprints = blueprints.filter(category_id=category_id)
    if organization_id:
        blueprints = blueprints.filter(organization_id=organization_id)
    if author_id:
        blueprints = blueprints.filter(author__username=author_id)
    return blueprints


def blueprint_get(*, actor: Actor, blueprint_id: str) -> Blueprint:
    """The blueprint, if the actor may read it; permissions.NotFound otherwise (404, whatever the reason)."""
    blueprint = Blueprint.objects.select_related("category", "author").filter(pk=blueprint_id).first()
    if blueprint is None:
        raise permissions.NotFound(f"Blueprint '{blueprint_id}' not found.")
    permissions.blueprint_read_check(actor, blueprint)
    return blueprint
