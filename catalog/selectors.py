"""Catalog reads. Each list is one query (the related category comes by join)."""

from __future__ import annotations

from collections.abc import Iterable

from django.db.models import QuerySet

from catalog.models import AgentEntry, Blueprint, Category


def agent_entry_list(*, class_names: Iterable[str] = ()) -> QuerySet[AgentEntry]:
    entries = AgentEntry.objects.all()
    names = [name for name in class_names if name]
    if names:
        entries = entries.filter(qualified_class_name__in=names)
    return entries


def agent_entry_get(*, qualified_class_name: str) -> AgentEntry | None:
    return AgentEntry.objects.filter(qualified_class_name=qualified_class_name).first()


def category_list() -> QuerySet[Category]:
    return Category.objects.all()


def category_get(*, category_id: str) -> Category | None:
    return Category.objects.filter(pk=category_id).first()


def blueprint_list(
    *, category_id: str | None = None, organization_id: str | None = None, author_id: str | None = None
) -> QuerySet[Blueprint]:
    blueprints = Blueprint.objects.select_related("category")
    if category_id:
        blueprints = blueprints.filter(category_id=category_id)
    if organization_id:
        blueprints = blueprints.filter(organization_id=organization_id)
    if author_id:
        blueprints = blueprints.filter(author_id=author_id)
    return blueprints


def blueprint_get(*, blueprint_id: str) -> Blueprint | None:
    return Blueprint.objects.select_related("category").filter(pk=blueprint_id).first()
