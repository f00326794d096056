"""Catalog writes: register agent classes, keep categories and blueprints, launch a guild from a blueprint.

The REST views and `load_demo_data` come through here. The rules themselves (a spec must
validate, a class name must be an agent class) live in guilds.spec and guilds.runtime.registry,
which the admin's forms (catalog.forms, catalog.admin) call too.
"""

from __future__ import annotations

import logging
from typing import Any

from django.contrib.auth.models import AbstractBaseUser
from django.db import IntegrityError, transaction

from catalog.models import AgentEntry, Blueprint, Category, Exposure
from guilds.external.registry import SeatRefused
from guilds.models import Guild
from guilds.runtime.registry import resolve_agent_class
from guilds.services import guild_create
from guilds.spec import SpecError, validate_guild_spec
from guildsite.accounts.models import Organization
from guildsite.redaction import SecretNotStored, refuse_masks, restore_secrets

logger = logging.getLogger(__name__)


class AgentEntryExists(Exception):
    """The qualified class name is registered already."""


class CategoryNameTaken(Exception):
    """Another category has this name (names are unique, ignoring case)."""

    def __init__(self, message: str, *, existing: Category):
        super().__init__(message)
        self.existing = existing


class BlueprintNotLaunchable(Exception):
    """The stored spec no longer validates (e.g. an agent class was removed since it was saved)."""


def agent_entry_register(
    *,
    qualified_class_name: str,
    description: str | None = None,
    properties_schema: dict[str, Any] | None = None,
    dependencies: list[Any] | None = None,
    agent_name: str | None = None,
    message_handlers: dict[str, Any] | None = None,
) -> AgentEntry:
    """Add an agent class to the catalog. Fields left out are taken from the class itself.

    Raises AgentClassError (not an agent class) or AgentEntryExists.
    """
    qualified_class_name = qualified_class_name.strip()
    described = resolve_agent_class(qualified_class_name).describe()
    entry = AgentEntry(
        qualified_class_name=qualified_class_name,
        agent_name=agent_name if agent_name is not None else described["agent_name"],
        description=description if description is not None else described["description"],
        properties_schema=properties_schema if properties_schema is not None else described["properties_schema"],
        dependencies=dependencies if dependencies is not None else [],
        message_handlers=message_handlers if message_handlers is not None else described["message_handlers"],
    )
    if AgentEntry.objects.filter(qualified_class_name=qualified_class_name).exists():
        raise AgentEntryExists(f"'{qualified_class_name}' already exists")
    try:
        # The savepoint keeps an outer transaction usable when a concurrent insert wins the race.
        with transaction.atomic():
            entry.save(force_insert=True)
    except IntegrityError:
        raise AgentEntryExists(f"'{qualified_class_name}' already exists") from None
    logger.info("agent class registered", extra={"qualified_class_name": qualified_class_name})
    return entry


def category_create(*, name: str, description: str = "", organization: Organization | None = None
                    ) -> tuple[Category, bool]:
    """Create a category (site-wide without an organisation), or return the existing one when the same
    name and description are sent again in the same place.

    Returns (category, created). A name taken there with a different description raises
    CategoryNameTaken, so a retried request is harmless but two meanings of one name are refused.
    """
    name = name.strip()
    same_place = Category.objects.filter(name__iexact=name, organization=organization)
    existing = same_place.first()
    if existing is None:
        category = Category(name=name, description=description, organization=organization)
        try:
            with transaction.atomic():
                category.save(force_insert=True)
            return category, True
        except IntegrityError:
            existing = same_place.first()
            if existing is None:
                raise
    if existing.description == description:
        return existing, False
    raise CategoryNameTaken(
        f"a category named '{existing.name}' already exists (id {existing.id}) with another description",
        existing=existing,
    )


def _checked_spec(spec: Any) -> dict[str, Any]:
    # Validation only: the blueprint keeps the spec exactly as it was sent (no generated agent ids).
    validate_guild_spec(spec)
    return spec


def blueprint_create(
    *,
    name: str,
    author: AbstractBaseUser,
    organization: Organization,
    spec: dict[str, Any],
    description: str = "",
    version: str = "",
    exposure: str = Exposure.PRIVATE,
    category: Category | None = None,
    tags: list[str] | None = None,
    intro_msg: str = "",
    icon: str = "",
) -> Blueprint:
    """Store a blueprint. Raises SpecError when the spec does not validate."""
    try:
        refuse_masks(spec)
    except SecretNotStored as exc:
        raise SpecError({exc.path: [str(exc).split(": ", 1)[1]]}) from None
    blueprint = Blueprint(
        name=name,
        description=description,
        version=version,
        author=author,
        organization=organization,
        exposure=exposure,
        category=category,
        spec=_checked_spec(spec),
        tags=list(tags or []),
        intro_msg=intro_msg or "",
        icon=icon or "",
    )
    blueprint.save(force_insert=True)
    logger.info("blueprint created", extra={"blueprint_id": blueprint.id, "blueprint_name": name})
    return blueprint


_UPDATABLE = frozenset(
    {"name", "description", "version", "author", "organization", "exposure", "category", "spec", "tags",
     "intro_msg", "icon"}
)


def blueprint_update(*, blueprint: Blueprint, **changes: Any) -> Blueprint:
    """Change the given fields. A spec sent back with `"***"` where a secret was keeps that secret.

    Raises SpecError when a new spec does not validate.
    """
    unknown = set(changes) - _UPDATABLE
    if unknown:
        raise TypeError(f"blueprint_update got unknown fields: {', '.join(sorted(unknown))}")
    if "spec" in changes:
        try:
            restored = restore_secrets(changes["spec"], blueprint.spec)
        except SecretNotStored as exc:
            raise SpecError({exc.path: [str(exc).split(": ", 1)[1]]}) from None
        changes["spec"] = _checked_spec(restored)
    for field, value in changes.items():
        setattr(blueprint, field, value)
    blueprint.save()
    logger.info("blueprint updated", extra={"blueprint_id": blueprint.id, "fields": sorted(changes)})
    return blueprint


def blueprint_delete(*, blueprint: Blueprint) -> None:
    """Delete a blueprint. Guilds launched from it keep running and keep their own copy of the spec."""
    blueprint_id = blueprint.id
    blueprint.delete()
    logger.info("blueprint deleted", extra={"blueprint_id": blueprint_id})


def blueprint_share(*, blueprint: Blueprint, organization: Organization) -> None:
    """Share with an organisation (it takes effect while the blueprint's exposure is `shared`)."""
    blueprint.shared_with.add(organization)
    logger.info("blueprint shared", extra={"blueprint_id": blueprint.id, "organization_id": organization.id})


def blueprint_unshare(*, blueprint: Blueprint, organization_id: str) -> None:
    blueprint.shared_with.remove(*blueprint.shared_with.filter(pk=organization_id))
    logger.info("blueprint unshared", extra={"blueprint_id": blueprint.id, "organization_id": organization_id})


def blueprint_launch(
    *,
    blueprint: Blueprint,
    guild_name: str,
    launched_by: AbstractBaseUser,
    organization: Organization,
    description: str | None = None,
) -> Guild:
    """Create a guild from the blueprint's spec; it is stored REQUESTED and launched once committed."""
    try:
        spec = validate_guild_spec(blueprint.spec)
    except SpecError as exc:
        raise BlueprintNotLaunchable(f"blueprint '{blueprint.id}' has a spec that no longer validates: {exc}") from None
    try:
        guild = guild_create(
            spec=spec,
            name=guild_name,
            launched_by=launched_by,
            organization=organization,
            description=description or None,
            blueprint_id=blueprint.id,
        )
    except SeatRefused as exc:
        raise BlueprintNotLaunchable(f"blueprint '{blueprint.id}' cannot be launched here: {exc}") from None
    logger.info(
        "guild requested from blueprint",
        extra={"guild_id": guild.id, "blueprint_id": blueprint.id, "user_id": launched_by.get_username()},
    )
    return guild
