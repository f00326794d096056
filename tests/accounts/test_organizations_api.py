"""/api/organizations: create, list, detail, and members (read by anyone in it, managed by its admins)."""

from __future__ import annotations

import pytest

from guildsite.accounts.models import Membership, Organization
from tests import factories

pytestmark = pytest.mark.django_db


def _create(api, username: str, **body):
    return api.post("/api/organizations", body, **factories.bearer(username))


@pytest.fixture
def alice(new_name) -> str:
    username = new_name("alice")
    factories.user(username)
    return username


@pytest.fixture
def org(new_name) -> dict[str, str]:
    """An organisation with an admin, a member and a viewer, and an outsider who is in another one."""
    people = {role: new_name(role) for role in ("admin", "member", "viewer", "outsider")}
    factories.organization("acme", **{people["admin"]: "admin", people["member"]: "member",
                                      people["viewer"]: "viewer"})
    factories.organization("elsewhere", **{people["outsider"]: "admin"})
    return people


def _members(organization_id: str) -> dict[str, str]:
    return dict(Membership.objects.filter(organization_id=organization_id).values_list("user__username", "role"))


# --- create ----------------------------------------------------------------------------------


def test_the_id_is_derived_from_the_name_and_the_creator_is_admin(api, alice):
    response = _create(api, alice, name="Acme Labs")

    assert response.status_code == 201, response.content
    body = response.json()
    assert body["id"] == "acme-labs"
    assert body["name"] == "Acme Labs"
    assert body["role"] == "admin"
    assert {"id": "acme-labs", "name": "Acme Labs", "role": "admin"} in api.get(
        "/api/auth/me", **factories.bearer(alice)).json()["organizations"]
    assert _members("acme-labs") == {alice: "admin"}


def test_a_taken_derived_id_gets_a_number(api, alice, new_name):
    bob = new_name("bob")
    factories.user(bob)

    ids = [_create(api, alice, name="Acme Labs").json()["id"], _create(api, bob, name="Acme Labs").json()["id"],
           _create(api, alice, name="acme labs!").json()["id"]]

    assert ids == ["acme-labs", "acme-labs-2", "acme-labs-3"]
    assert _members("acme-labs-2") == {bob: "admin"}


@pytest.mark.parametrize(("name", "expected"), [("Ünïcödé Team", "unicode-team"), ("  R&D  ", "r-d"), ("X", "org-x")])
def test_a_derived_id_is_always_a_valid_slug(api, alice, name, expected):
    response = _create(api, alice, name=name)

    assert response.status_code == 201, response.content
    assert response.json()["id"] == expected


def test_a_given_id_is_used(api, alice):
    response = _create(api, alice, name="Acme Labs", id="acme")

    assert response.status_code == 201, response.content
    assert response.json()["id"] == "acme"
    assert Organization.objects.get(pk="acme").name == "Acme Labs"


def test_a_taken_given_id_is_a_409(api, problem, alice, new_name):
    first = new_name("first")
    factories.organization("acme", **{first: "admin"})

    body = problem(_create(api, alice, name="Another Acme", id="acme"), 409, "conflict")

    assert "acme" in body["detail"]
    assert Organization.objects.get(pk="acme").name == "acme"
    assert _members("acme") == {first: "admin"}


@pytest.mark.parametrize("given", ["-acme", "Acme", "a", "acme_labs", "acme labs", "x" * 64, "", "ac.me"])
def test_an_invalid_given_id_is_a_400(api, problem, alice, given):
    body = problem(_create(api, alice, name="Acme", id=given), 400, "invalid")

    assert "id" in body["errors"]
    assert not Organization.objects.filter(memberships__user__username=alice).exists()


def test_the_longest_valid_id_is_accepted(api, alice):
    given = "a" + "-b" * 31  # 63 characters

    response = _create(api, alice, name="Long", id=given)

    assert response.status_code == 201, response.content
    assert response.json()["id"] == given


@pytest.mark.parametrize("body", [{}, {"name": ""}, {"name": "   "}, {"name": "x" * 129}])
def test_a_missing_or_bad_name_is_a_400(api, problem, alice, body):
    problem(_create(api, alice, **body), 400, "invalid")


def test_anonymous_cannot_create_an_organisation(api, problem):
    problem(api.post("/api/organizations", {"name": "Acme Labs"}), 401, "not_authenticated")
    assert not Organization.objects.filter(pk="acme-labs").exists()


def test_an_api_key_cannot_create_an_organisation(api, problem, key_auth, org):
    _, key = factories.api_key("acme", org["admin"])

    problem(api.post("/api/organizations", {"name": "Key Made"}, **key_auth(key)), 403, "permission_denied")
    assert not Organization.objects.filter(pk="key-made").exists()


# --- list and detail ---------------------------------------------------------------------------


def test_the_list_shows_only_the_callers_organisations_with_their_role(api, org):
    factories.organization("elsewhere", **{org["viewer"]: "viewer"})

    response = api.get("/api/organizations", **factories.bearer(org["viewer"]))

    assert response.status_code == 200, response.content
    assert [(o["id"], o["name"], o["role"]) for o in response.json()] == [("acme", "acme", "viewer"),
                                                                         ("elsewhere", "elsewhere", "viewer")]


def test_the_list_of_a_user_in_no_organisation_is_empty(api, alice, org):
    assert api.get("/api/organizations", **factories.bearer(alice)).json() == []


def test_the_list_seen_through_a_key_is_the_keys_organisation(api, key_auth, org):
    factories.organization("elsewhere", **{org["admin"]: "admin"})
    _, key = factories.api_key("acme", org["admin"], scopes=["read"])

    response = api.get("/api/organizations", **key_auth(key))

    assert [(o["id"], o["role"]) for o in response.json()] == [("acme", "viewer")]


def test_anonymous_cannot_list_organisations(api, problem, org):
    problem(api.get("/api/organizations"), 401, "not_authenticated")


@pytest.mark.parametrize("role", ["admin", "member", "viewer"])
def test_detail_for_anyone_in_it(api, org, role):
    response = api.get("/api/organizations/acme", **factories.bearer(org[role]))

    assert response.status_code == 200, response.content
    body = response.json()
    assert (body["id"], body["name"], body["role"]) == ("acme", "acme", role)
    assert body["created_at"]


def test_detail_is_a_404_for_an_outsider(api, problem, org):
    problem(api.get("/api/organizations/acme", **factories.bearer(org["outsider"])), 404, "not_found")


def test_an_unknown_organisation_looks_like_someone_elses(api, problem, org):
    unknown = problem(api.get("/api/organizations/no-such-org", **factories.bearer(org["outsider"])), 404, "not_found")
    hidden = problem(api.get("/api/organizations/acme", **factories.bearer(org["outsider"])), 404, "not_found")

    assert unknown["detail"].replace("no-such-org", "ID") == hidden["detail"].replace("acme", "ID")


def test_detail_through_a_key_of_another_organisation_is_a_404(api, problem, key_auth, org):
    factories.organization("elsewhere", **{org["admin"]: "member"})
    _, key = factories.api_key("elsewhere", org["admin"])

    problem(api.get("/api/organizations/acme", **key_auth(key)), 404, "not_found")


def test_detail_anonymous_is_a_401(api, problem, org):
    problem(api.get("/api/organizations/acme"), 401, "not_authenticated")


# --- members: read -----------------------------------------------------------------------------


@pytest.mark.parametrize("role", ["admin", "member", "viewer"])
def test_anyone_in_the_organisation_reads_its_members(api, org, role):
    response = api.get("/api/organizations/acme/members", **factories.bearer(org[role]))

    assert response.status_code == 200, response.content
    members = response.json()
    assert {(m["username"], m["role"]) for m in members} == {(org["admin"], "admin"), (org["member"], "member"),
                                                             (org["viewer"], "viewer")}
    assert all(m["joined_at"] for m in members)
    assert [m["username"] for m in members] == sorted(m["username"] for m in members)


def test_an_outsider_cannot_read_the_members(api, problem, org):
    problem(api.get("/api/organizations/acme/members", **factories.bearer(org["outsider"])), 404, "not_found")


def test_a_key_reads_the_members_of_its_organisation(api, key_auth, org):
    _, key = factories.api_key("acme", org["member"], scopes=["read"])

    response = api.get("/api/organizations/acme/members", **key_auth(key))

    assert response.status_code == 200, response.content
    assert len(response.json()) == 3


# --- members: add, change, remove --------------------------------------------------------------


def test_an_admin_adds_a_member(api, org, alice):
    response = api.post("/api/organizations/acme/members", {"username": alice, "role": "viewer"},
                        **factories.bearer(org["admin"]))

    assert response.status_code == 201, response.content
    assert (response.json()["username"], response.json()["role"]) == (alice, "viewer")
    assert {"id": "acme", "name": "acme", "role": "viewer"} in api.get(
        "/api/auth/me", **factories.bearer(alice)).json()["organizations"]


def test_the_role_defaults_to_member(api, org, alice):
    response = api.post("/api/organizations/acme/members", {"username": alice}, **factories.bearer(org["admin"]))

    assert response.status_code == 201, response.content
    assert _members("acme")[alice] == "member"


@pytest.mark.parametrize("role", ["member", "viewer"])
def test_only_admins_add_members(api, problem, org, alice, role):
    problem(api.post("/api/organizations/acme/members", {"username": alice, "role": "admin"},
                     **factories.bearer(org[role])), 403, "permission_denied")
    assert alice not in _members("acme")


def test_an_outsider_adding_a_member_is_a_404(api, problem, org, alice):
    problem(api.post("/api/organizations/acme/members", {"username": alice},
                     **factories.bearer(org["outsider"])), 404, "not_found")
    assert alice not in _members("acme")


def test_adding_an_unknown_user_is_a_400(api, problem, org, new_name):
    ghost = new_name("ghost")

    body = problem(api.post("/api/organizations/acme/members", {"username": ghost},
                            **factories.bearer(org["admin"])), 400, "invalid")

    assert "username" in body["errors"]
    assert ghost not in _members("acme")


def test_adding_someone_already_in_is_a_409(api, problem, org):
    problem(api.post("/api/organizations/acme/members", {"username": org["viewer"], "role": "admin"},
                     **factories.bearer(org["admin"])), 409, "conflict")
    assert _members("acme")[org["viewer"]] == "viewer"


def test_adding_with_an_unknown_role_is_a_400(api, problem, org, alice):
    body = problem(api.post("/api/organizations/acme/members", {"username": alice, "role": "owner"},
                            **factories.bearer(org["admin"])), 400, "invalid")

    assert "role" in body["errors"]


def test_an_admin_changes_a_role(api, org):
    response = api.patch(f"/api/organizations/acme/members/{org['viewer']}", {"role": "member"},
                         **factories.bearer(org["admin"]))

    assert response.status_code == 200, response.content
    assert (response.json()["username"], response.json()["role"]) == (org["viewer"], "member")
    assert _members("acme")[org["viewer"]] == "member"


def test_a_promoted_member_acts_as_admin(api, org, alice):
    api.patch(f"/api/organizations/acme/members/{org['member']}", {"role": "admin"}, **factories.bearer(org["admin"]))

    response = api.post("/api/organizations/acme/members", {"username": alice}, **factories.bearer(org["member"]))

    assert response.status_code == 201, response.content


@pytest.mark.parametrize("role", ["member", "viewer"])
def test_only_admins_change_roles(api, problem, org, role):
    problem(api.patch(f"/api/organizations/acme/members/{org[role]}", {"role": "admin"},
                      **factories.bearer(org[role])), 403, "permission_denied")
    assert _members("acme")[org[role]] == role


def test_an_outsider_changing_a_role_is_a_404(api, problem, org):
    problem(api.patch(f"/api/organizations/acme/members/{org['viewer']}", {"role": "admin"},
                      **factories.bearer(org["outsider"])), 404, "not_found")


def test_changing_someone_not_in_it_is_a_404(api, problem, org):
    problem(api.patch(f"/api/organizations/acme/members/{org['outsider']}", {"role": "viewer"},
                      **factories.bearer(org["admin"])), 404, "not_found")
    assert org["outsider"] not in _members("acme")


def test_changing_to_an_unknown_role_is_a_400(api, problem, org):
    problem(api.patch(f"/api/organizations/acme/members/{org['viewer']}", {"role": "owner"},
                      **factories.bearer(org["admin"])), 400, "invalid")
    assert _members("acme")[org["viewer"]] == "viewer"


def test_an_admin_removes_a_member(api, org):
    response = api.delete(f"/api/organizations/acme/members/{org['member']}", **factories.bearer(org["admin"]))

    assert response.status_code == 204, response.content
    assert org["member"] not in _members("acme")
    assert api.get("/api/organizations/acme", **factories.bearer(org["member"])).status_code == 404


@pytest.mark.parametrize("role", ["member", "viewer"])
def test_only_admins_remove_members(api, problem, org, role):
    problem(api.delete(f"/api/organizations/acme/members/{org['viewer']}", **factories.bearer(org[role])),
            403, "permission_denied")
    assert org["viewer"] in _members("acme")


def test_an_outsider_removing_a_member_is_a_404(api, problem, org):
    problem(api.delete(f"/api/organizations/acme/members/{org['member']}", **factories.bearer(org["outsider"])),
            404, "not_found")
    assert org["member"] in _members("acme")


def test_removing_someone_not_in_it_is_a_404(api, problem, org):
    problem(api.delete(f"/api/organizations/acme/members/{org['outsider']}", **factories.bearer(org["admin"])),
            404, "not_found")


# --- the last admin ----------------------------------------------------------------------------


def test_the_last_admin_cannot_be_demoted(api, problem, org):
    problem(api.patch(f"/api/organizations/acme/members/{org['admin']}", {"role": "member"},
                      **factories.bearer(org["admin"])), 409, "conflict")
    assert _members("acme")[org["admin"]] == "admin"


def test_the_last_admin_cannot_be_removed(api, problem, org):
    problem(api.delete(f"/api/organizations/acme/members/{org['admin']}", **factories.bearer(org["admin"])),
            409, "conflict")
    assert _members("acme")[org["admin"]] == "admin"


def test_the_last_admin_may_be_set_to_admin_again(api, org):
    response = api.patch(f"/api/organizations/acme/members/{org['admin']}", {"role": "admin"},
                         **factories.bearer(org["admin"]))

    assert response.status_code == 200, response.content


def test_with_a_second_admin_an_admin_may_step_down(api, org):
    api.patch(f"/api/organizations/acme/members/{org['member']}", {"role": "admin"}, **factories.bearer(org["admin"]))

    demoted = api.patch(f"/api/organizations/acme/members/{org['admin']}", {"role": "viewer"},
                        **factories.bearer(org["admin"]))
    removed = api.delete(f"/api/organizations/acme/members/{org['admin']}", **factories.bearer(org["member"]))

    assert (demoted.status_code, removed.status_code) == (200, 204)
    assert _members("acme") == {org["member"]: "admin", org["viewer"]: "viewer"}


# --- API keys never manage members -----------------------------------------------------------


def test_an_admins_api_key_cannot_add_members(api, problem, key_auth, org, alice):
    _, key = factories.api_key("acme", org["admin"], scopes=["read", "write"])

    problem(api.post("/api/organizations/acme/members", {"username": alice}, **key_auth(key)), 403, "permission_denied")
    assert alice not in _members("acme")


def test_an_admins_api_key_cannot_change_roles(api, problem, key_auth, org):
    _, key = factories.api_key("acme", org["admin"], scopes=["write"])

    problem(api.patch(f"/api/organizations/acme/members/{org['viewer']}", {"role": "admin"}, **key_auth(key)),
            403, "permission_denied")
    assert _members("acme")[org["viewer"]] == "viewer"


def test_an_admins_api_key_cannot_remove_members(api, problem, key_auth, org):
    _, key = factories.api_key("acme", org["admin"], scopes=["write"])

    problem(api.delete(f"/api/organizations/acme/members/{org['member']}", **key_auth(key)), 403, "permission_denied")
    assert org["member"] in _members("acme")


def test_anonymous_cannot_manage_members(api, problem, org, alice):
    problem(api.post("/api/organizations/acme/members", {"username": alice}), 401, "not_authenticated")
    problem(api.patch(f"/api/organizations/acme/members/{org['viewer']}", {"role": "admin"}), 401, "not_authenticated")
    problem(api.delete(f"/api/organizations/acme/members/{org['member']}"), 401, "not_authenticated")
    assert _members("acme") == {org["admin"]: "admin", org["member"]: "member", org["viewer"]: "viewer"}
