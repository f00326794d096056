"""Categories per organisation (and site-wide ones for staff), and sharing a blueprint with another
organisation, with authentication on."""

from __future__ import annotations

import pytest

from catalog.models import Blueprint, Category, Exposure
from guilds.models import Guild
from tests import factories

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def people(settings) -> None:
    settings.AUTH_DISABLED = False
    factories.organization("org-a", **{"author": "member", "a-admin": "admin", "a-member": "member",
                                       "a-viewer": "viewer"})
    factories.organization("org-b", **{"b-member": "member", "b-viewer": "viewer"})
    factories.organization("org-c", **{"c-member": "member"})
    factories.user("staff", staff=True)


def as_(username: str | None) -> dict[str, str]:
    return factories.bearer(username) if username else {}


# --- categories ----------------------------------------------------------------------------


def create_category(api, username: str | None, name: str = "Testing", description: str = "", **body):
    return api.post("/catalog/categories/", {"name": name, "description": description, **body}, **as_(username))


@pytest.mark.parametrize(("username", "status"), [
    ("a-member", 201), ("a-admin", 201), ("a-viewer", 403), ("b-member", 404), (None, 401),
])
def test_a_category_of_an_organisation_needs_a_member_of_it(api, problem, username, status):
    response = create_category(api, username, organization_id="org-a")

    if status == 201:
        assert response.status_code == 201, response.content
        assert Category.objects.get(pk=response.json()["id"]).organization_id == "org-a"
    else:
        problem(response, status)
        assert not Category.objects.exists()


def test_a_category_of_an_unknown_organisation_is_404(api, problem):
    problem(create_category(api, "a-member", organization_id="no-such-org"), 404, "not_found")


@pytest.mark.parametrize(("username", "status"), [("staff", 201), ("a-admin", 403), ("a-member", 403), (None, 401)])
def test_a_site_wide_category_needs_site_staff(api, problem, username, status):
    response = create_category(api, username)

    if status == 201:
        assert response.status_code == 201, response.content
        assert Category.objects.get(pk=response.json()["id"]).organization_id is None
    else:
        problem(response, status)
        assert not Category.objects.exists()


def test_an_api_key_of_a_staff_user_is_not_staff(api, problem):
    factories.organization("org-a", staff="admin")
    _, key = factories.api_key("org-a", "staff", scopes=["write"])

    problem(api.post("/catalog/categories/", {"name": "Site"}, HTTP_AUTHORIZATION=f"Bearer {key}"), 403)


def test_names_are_unique_per_organisation_ignoring_case(api, problem):
    first = create_category(api, "a-member", description="d", organization_id="org-a")
    assert first.status_code == 201

    again = create_category(api, "a-member", description="d", organization_id="org-a")
    assert (again.status_code, again.json()["id"]) == (200, first.json()["id"])  # a retry, harmless
    problem(create_category(api, "a-member", description="other", organization_id="org-a"), 409)
    problem(create_category(api, "a-member", "TESTING", description="other", organization_id="org-a"), 409)
    elsewhere = create_category(api, "b-member", description="other", organization_id="org-b")
    site_wide = create_category(api, "staff", description="other")

    assert (elsewhere.status_code, site_wide.status_code) == (201, 201)
    assert len({first.json()["id"], elsewhere.json()["id"], site_wide.json()["id"]}) == 3
    problem(create_category(api, "staff", "testing", description="another"), 409)  # among site-wide ones


def _categories() -> dict[str, str]:
    return {
        "site": Category.objects.create(name="Site").pk,
        "a": Category.objects.create(name="Of A", organization_id="org-a").pk,
        "b": Category.objects.create(name="Of B", organization_id="org-b").pk,
    }


@pytest.mark.parametrize(("username", "visible"), [
    ("a-viewer", {"Site", "Of A"}), ("b-member", {"Site", "Of B"}), ("c-member", {"Site"}),
])
def test_lists_show_site_wide_categories_and_those_of_the_callers_organisations(api, username, visible):
    _categories()

    response = api.get("/catalog/categories/", **as_(username))

    assert response.status_code == 200
    assert {c["name"] for c in response.json()} == visible


def test_another_organisations_category_is_not_found(api, problem):
    ids = _categories()

    assert api.get(f"/catalog/categories/{ids['a']}", **as_("a-member")).status_code == 200
    problem(api.get(f"/catalog/categories/{ids['b']}", **as_("a-member")), 404, "not_found")
    problem(api.get("/catalog/categories/", **as_(None)), 401, "not_authenticated")


def test_development_mode_lists_every_category(api, settings):
    _categories()
    settings.AUTH_DISABLED = True

    response = api.get("/catalog/categories/", HTTP_X_USER_ID="c-member")

    assert {c["name"] for c in response.json()} == {"Site", "Of A", "Of B"}


def test_a_blueprint_cannot_take_another_organisations_category(api, problem):
    """It would show that category's name to everyone who reads the blueprint: like an unknown id."""
    ids = _categories()
    body = {"name": "Filed", "organization_id": "org-a", "spec": factories.ECHO_SPEC}

    own = api.post("/catalog/blueprints/", {**body, "category_id": ids["a"]}, **as_("a-member"))
    unknown = api.post("/catalog/blueprints/", {**body, "category_id": "no-such-category"}, **as_("a-member"))
    other = api.post("/catalog/blueprints/", {**body, "category_id": ids["b"]}, **as_("a-member"))

    assert own.status_code == 201
    assert "category_id" in problem(unknown, 400, "invalid")["errors"]
    assert "category_id" in problem(other, 400, "invalid")["errors"]
    assert set(Blueprint.objects.values_list("category_id", flat=True)) == {ids["a"]}


# --- sharing -------------------------------------------------------------------------------


@pytest.fixture
def shared() -> Blueprint:
    """org A's blueprint by `author`, exposure `shared`, shared with nobody yet."""
    return factories.blueprint(author="author", org="org-a", exposure=Exposure.SHARED, name="Shared")


def share(api, blueprint, username: str | None, organization_id: str = "org-b"):
    return api.post(f"/catalog/blueprints/{blueprint.id}/share/", {"organization_id": organization_id},
                    **as_(username))


def unshare(api, blueprint, username: str | None, organization_id: str = "org-b"):
    return api.delete(f"/catalog/blueprints/{blueprint.id}/share/{organization_id}", **as_(username))


def read(api, blueprint, username: str):
    return api.get(f"/catalog/blueprints/{blueprint.id}", **as_(username))


def launch(api, blueprint, username: str, organization_id: str):
    return api.post(f"/catalog/blueprints/{blueprint.id}/guilds",
                    {"guild_name": f"by-{username}", "user_id": username, "org_id": organization_id},
                    **as_(username))


def listed(api, username: str) -> set[str]:
    return {b["name"] for b in api.get("/catalog/blueprints/", **as_(username)).json()}


def test_sharing_lets_the_other_organisation_read_and_launch_and_unsharing_hides_it_again(api, problem, shared):
    problem(read(api, shared, "b-member"), 404)
    problem(launch(api, shared, "b-member", "org-b"), 404)

    assert share(api, shared, "author").status_code == 204
    assert read(api, shared, "author").json()["shared_with"] == ["org-b"]
    assert read(api, shared, "b-member").status_code == 200
    assert "Shared" in listed(api, "b-member")
    launched = launch(api, shared, "b-member", "org-b")
    assert launched.status_code == 201, launched.content
    guild = Guild.objects.get(pk=launched.json()["id"])
    assert (guild.organization_id, guild.launched_by.username) == ("org-b", "b-member")
    assert read(api, shared, "b-viewer").status_code == 200  # viewers read ...
    problem(launch(api, shared, "b-viewer", "org-b"), 403)  # ... but do not launch
    problem(read(api, shared, "c-member"), 404)  # not shared with C

    assert unshare(api, shared, "author").status_code == 204
    problem(read(api, shared, "b-member"), 404)
    problem(launch(api, shared, "b-member", "org-b"), 404)
    assert "Shared" not in listed(api, "b-member")


def test_a_share_counts_only_while_the_exposure_is_shared(api, problem, shared):
    assert share(api, shared, "author").status_code == 204

    for exposure, status in (("organization", 404), ("private", 404), ("shared", 200)):
        assert api.patch(f"/catalog/blueprints/{shared.id}", {"exposure": exposure}, **as_("author")).status_code == 200
        assert read(api, shared, "b-member").status_code == status, exposure


@pytest.mark.parametrize(("username", "status"), [
    ("author", 204), ("a-admin", 204), ("a-member", 403), ("a-viewer", 403), ("c-member", 404), (None, 401),
])
def test_who_may_share(api, problem, shared, username, status):
    response = share(api, shared, username, "org-c")

    if status == 204:
        assert response.status_code == 204, response.content
    else:
        problem(response, status)
    assert list(shared.shared_with.values_list("pk", flat=True)) == (["org-c"] if status == 204 else [])


@pytest.mark.parametrize(("username", "status"), [
    ("author", 204), ("a-admin", 204), ("a-member", 403), ("b-member", 403), ("c-member", 404), (None, 401),
])
def test_who_may_unshare(api, problem, shared, username, status):
    assert share(api, shared, "author").status_code == 204

    response = unshare(api, shared, username)

    if status == 204:
        assert response.status_code == 204, response.content
    else:
        problem(response, status)
    assert list(shared.shared_with.values_list("pk", flat=True)) == ([] if status == 204 else ["org-b"])


def test_the_organisation_it_is_shared_with_cannot_share_it_on(api, problem, shared):
    assert share(api, shared, "author").status_code == 204

    problem(share(api, shared, "b-member", "org-c"), 403)
    problem(read(api, shared, "c-member"), 404)


def test_sharing_with_an_unknown_organisation_is_404(api, problem, shared):
    problem(share(api, shared, "author", "no-such-org"), 404, "not_found")

    assert not shared.shared_with.exists()
