"""The catalog's pages: agent classes and blueprints, and a blueprint's form. Reads go through the permission
layer as the REST API's do; every write (create, change, launch) is the page's REST call (static/guildsite/
catalog.js), so the page can do only what the API lets its viewer do, and shows the API's own messages."""

from __future__ import annotations

import json

from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.csrf import ensure_csrf_cookie

from catalog import selectors as catalog
from catalog.models import Exposure
from guilds.dashboard.catalog_selectors import blueprint_changeable, blueprint_needs, catalog_blueprint_rows, visible_shared_with
from guilds.dashboard.views import _common, _organizations, _page_actor, _sign_in
from guildsite import permissions
from guildsite.accounts.models import Organization
from guildsite.identity import Actor
from guildsite.page_policy import strict_page
from guildsite.redaction import redact_spec

# The form offers the API's names; `organization_and_children` is an alias the API keeps for old clients.
EXPOSURES = [(value, label) for value, label in Exposure.choices if value != Exposure.ORGANIZATION_AND_CHILDREN]


def _writable_organizations(actor: Actor) -> list[Organization]:
    """Where the viewer may create a blueprint or launch a guild (the API checks each call again)."""
    writable = []
    for organization in _organizations(actor):
        try:
            permissions.blueprint_create_check(actor, organization.pk)
        except permissions.PermissionProblem:
            continue
        writable.append(organization)
    return writable


def _shown_exposure(exposure: str) -> str:
    """The form's choice for a stored exposure: the old alias is what the API now calls `organization` (a missing
    choice would leave the browser on the first one, and a save would widen the blueprint to it)."""
    return Exposure.ORGANIZATION if exposure == Exposure.ORGANIZATION_AND_CHILDREN else exposure


def _form_context(actor: Actor) -> dict:
    return {
        "agent_classes": list(catalog.agent_entry_list()),
        "categories": list(catalog.category_list(actor=actor).order_by("name", "pk")),
        "writable_organizations": _writable_organizations(actor),
        "exposures": EXPOSURES,
    }


@strict_page
@ensure_csrf_cookie  # the page's API calls send the CSRF token with the session cookie
def catalog_page(request: HttpRequest) -> HttpResponse:
    actor = _page_actor(request)
    if actor is None:
        return _sign_in(request)
    writable = _writable_organizations(actor)
    return render(request, "dashboard/catalog.html", {
        **_common(request, actor),
        # Each class with its properties schema as indented JSON, to read in a <details>.
        "agent_classes": [(entry, json.dumps(entry.properties_schema, indent=2, ensure_ascii=False))
                          for entry in catalog.agent_entry_list()],
        "rows": catalog_blueprint_rows(actor=actor),
        "writable_organizations": writable,
    })


@strict_page
@ensure_csrf_cookie
def blueprint_new(request: HttpRequest) -> HttpResponse:
    actor = _page_actor(request)
    if actor is None:
        return _sign_in(request)
    return render(request, "dashboard/blueprint_form.html", {**_common(request, actor), **_form_context(actor),
                                                             "blueprint": None, "changeable": True,
                                                             "exposure": Exposure.PRIVATE})  # as the API's default


@strict_page
@ensure_csrf_cookie
def blueprint_page(request: HttpRequest, blueprint_id: str) -> HttpResponse:
    """A blueprint: its form for those who may change it, its details for everyone else who may read it."""
    actor = _page_actor(request)
    if actor is None:
        return _sign_in(request)
    try:
        blueprint = catalog.blueprint_get(actor=actor, blueprint_id=blueprint_id)
    except permissions.NotFound:
        raise Http404("No such blueprint.") from None
    changeable = blueprint_changeable(actor, blueprint)
    spec = redact_spec(blueprint.spec)  # secrets as "***": sent back unchanged, the API keeps them
    return render(request, "dashboard/blueprint_form.html", {
        **_common(request, actor), **_form_context(actor),
        "blueprint": blueprint, "changeable": changeable, "exposure": _shown_exposure(blueprint.exposure),
        "spec": spec, "spec_text": json.dumps(spec, indent=2, ensure_ascii=False),
        "shared_with": visible_shared_with(actor, blueprint, changeable=changeable),
        "needs": blueprint_needs(blueprint.spec),
    })
