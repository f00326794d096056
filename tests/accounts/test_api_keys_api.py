"""/api/organizations/{id}/api-keys, and what a key may do once made: act as its creator, in its
organisation only, at most at its scope; revoked, expired or agent-bound keys get a 401."""

from __future__ import annotations

import hashlib
from datetime import timedelta

import pytest
from django.utils import timezone

from guildsite.accounts.models import ApiKey
from tests import factories

pytestmark = pytest.mark.django_db


@pytest.fixture
def org(new_name) -> dict[str, str]:
    """`acme` with an admin, two members and a viewer; `elsewhere` with an admin."""
    people = {role: new_name(role) for role in ("admin", "member", "other_member", "viewer", "outsider")}
    factories.organization("acme", **{people["admin"]: "admin", people["member"]: "member",
                                      people["other_member"]: "member", people["viewer"]: "viewer"})
    factories.organization("elsewhere", **{people["outsider"]: "admin"})
    return people


def _create_key(api, username: str, organization_id: str = "acme", **body):
    return api.post(f"/api/organizations/{organization_id}/api-keys", {"name": "ci", "scopes": ["write"], **body},
                    **factories.bearer(username))


def _keys(api, username: str, organization_id: str = "acme") -> list[dict]:
    response = api.get(f"/api/organizations/{organization_id}/api-keys", **factories.bearer(username))
    assert response.status_code == 200, response.content
    return response.json()


def _launch(api, headers: dict[str, str], blueprint_id: str, user_id: str, org_id: str = "acme"):
    return api.post(f"/catalog/blueprints/{blueprint_id}/guilds",
                    {"guild_name": "KeyGuild", "user_id": user_id, "org_id": org_id}, **headers)


# --- create and list ------------------------------------------------------------------------------


def test_the_key_is_returned_once_with_a_visible_prefix(api, org):
    response = _create_key(api, org["member"], name="nightly build", scopes=["read"])

    assert response.status_code == 201, response.content
    body = response.json()
    key = body["key"]
    assert key.startswith("gsk_")
    assert len(key) >= 40  # a high-entropy secret
    assert body["prefix"]
    assert key.startswith(body["prefix"])
    assert body["prefix"] != key
    assert body["name"] == "nightly build"
    assert body["scopes"] == ["read"]
    assert body["organization_id"] == "acme"
    assert body["created_by"] == org["member"]
    assert body["last_used_at"] is None
    assert body["revoked_at"] is None
    assert body["expires_at"] is None
    assert body["id"]


def test_only_the_keys_sha256_is_stored(api, org):
    body = _create_key(api, org["member"]).json()

    stored = ApiKey.objects.get(pk=body["id"])

    assert stored.key_hash == hashlib.sha256(body["key"].encode()).hexdigest()
    assert body["key"] not in {str(value) for value in vars(stored).values()}


def test_each_key_is_different(api, org):
    first, second = _create_key(api, org["member"]).json(), _create_key(api, org["member"]).json()

    assert first["key"] != second["key"]
    assert first["prefix"] != second["prefix"]


def test_the_list_never_shows_a_key_or_its_hash(api, org):
    created = _create_key(api, org["member"]).json()
    key_hash = ApiKey.objects.get(pk=created["id"]).key_hash

    response = api.get("/api/organizations/acme/api-keys", **factories.bearer(org["member"]))

    assert response.status_code == 200, response.content
    [listed] = response.json()
    assert listed["id"] == created["id"]
    assert listed["prefix"] == created["prefix"]
    assert "key" not in listed
    assert "key_hash" not in listed
    assert created["key"] not in response.content.decode()
    assert key_hash not in response.content.decode()


def test_a_key_with_an_expiry(api, org):
    expires = timezone.now() + timedelta(days=7)

    response = _create_key(api, org["member"], expires_at=expires.isoformat())

    assert response.status_code == 201, response.content
    assert ApiKey.objects.get(pk=response.json()["id"]).expires_at == expires


def test_an_expiry_in_the_past_is_a_400(api, problem, org):
    problem(_create_key(api, org["member"], expires_at=(timezone.now() - timedelta(minutes=1)).isoformat()), 400,
            "invalid")
    assert not ApiKey.objects.exists()


@pytest.mark.parametrize("scopes", [[], ["admin"], ["read", "write", "read"], "write"])
def test_bad_scopes_are_a_400(api, problem, org, scopes):
    body = problem(_create_key(api, org["admin"], scopes=scopes), 400, "invalid")

    assert "scopes" in body["errors"]
    assert not ApiKey.objects.exists()


def test_a_missing_name_is_a_400(api, problem, org):
    response = api.post("/api/organizations/acme/api-keys", {"scopes": ["read"]}, **factories.bearer(org["admin"]))

    assert "name" in problem(response, 400, "invalid")["errors"]


def test_a_viewer_cannot_create_a_write_key(api, problem, org):
    problem(_create_key(api, org["viewer"], scopes=["write"]), 403, "permission_denied")
    problem(_create_key(api, org["viewer"], scopes=["read", "write"]), 403, "permission_denied")
    assert not ApiKey.objects.exists()


def test_a_viewer_may_create_a_read_key(api, org):
    assert _create_key(api, org["viewer"], scopes=["read"]).status_code == 201


def test_an_outsider_cannot_create_or_list_keys(api, problem, org):
    problem(_create_key(api, org["outsider"]), 404, "not_found")
    problem(api.get("/api/organizations/acme/api-keys", **factories.bearer(org["outsider"])), 404, "not_found")
    assert not ApiKey.objects.exists()


def test_anonymous_cannot_create_or_list_keys(api, problem, org):
    problem(api.post("/api/organizations/acme/api-keys", {"name": "ci", "scopes": ["read"]}), 401, "not_authenticated")
    problem(api.get("/api/organizations/acme/api-keys"), 401, "not_authenticated")


def test_a_member_lists_only_their_own_keys_and_an_admin_all(api, org):
    mine = _create_key(api, org["member"], name="mine").json()["id"]
    theirs = _create_key(api, org["other_member"], name="theirs").json()["id"]
    admins = _create_key(api, org["admin"], name="admin's").json()["id"]

    assert [k["id"] for k in _keys(api, org["member"])] == [mine]
    assert {k["id"] for k in _keys(api, org["admin"])} == {mine, theirs, admins}
    assert {k["created_by"] for k in _keys(api, org["admin"])} == {org["member"], org["other_member"], org["admin"]}


def test_the_list_is_per_organisation(api, org):
    factories.organization("elsewhere", **{org["admin"]: "admin"})
    _create_key(api, org["admin"], "elsewhere")

    assert _keys(api, org["admin"], "acme") == []


def test_a_key_cannot_manage_keys(api, problem, key_auth, org):
    _, key = factories.api_key("acme", org["admin"], scopes=["write"])

    problem(api.get("/api/organizations/acme/api-keys", **key_auth(key)), 403, "permission_denied")
    problem(api.post("/api/organizations/acme/api-keys", {"name": "child", "scopes": ["read"]}, **key_auth(key)),
            403, "permission_denied")
    assert ApiKey.objects.count() == 1


def test_a_key_cannot_revoke_itself_or_others(api, problem, key_auth, org):
    stored, key = factories.api_key("acme", org["admin"], scopes=["write"])
    other, _ = factories.api_key("acme", org["member"], scopes=["write"])

    problem(api.delete(f"/api/organizations/acme/api-keys/{other.pk}", **key_auth(key)), 403, "permission_denied")
    problem(api.delete(f"/api/organizations/acme/api-keys/{stored.pk}", **key_auth(key)), 403, "permission_denied")
    assert not ApiKey.objects.filter(revoked_at__isnull=False).exists()


# --- what a key does ------------------------------------------------------------------------------


@pytest.fixture
def blueprint_id(org) -> str:
    return factories.blueprint(author=org["admin"], org="acme", exposure="organization").pk


def test_a_write_key_launches_a_guild_in_its_organisation(api, key_auth, org, blueprint_id):
    key = _create_key(api, org["member"], scopes=["write"]).json()["key"]

    response = _launch(api, key_auth(key), blueprint_id, user_id=org["member"])

    assert response.status_code == 201, response.content
    guild = api.get(f"/api/guilds/{response.json()['id']}", **key_auth(key))
    assert guild.status_code == 200, guild.content
    assert guild.json()["organization_id"] == "acme"
    assert guild.json()["user_id"] == org["member"]


def test_a_key_launches_only_as_its_creator(api, problem, key_auth, org, blueprint_id):
    key = _create_key(api, org["member"], scopes=["write"]).json()["key"]

    problem(_launch(api, key_auth(key), blueprint_id, user_id=org["admin"]), 403, "permission_denied")


def test_a_read_key_lists_guilds_but_cannot_launch(api, problem, key_auth, org, blueprint_id):
    made = factories.guild("Existing", org="acme", user=org["member"])
    key = _create_key(api, org["admin"], scopes=["read"]).json()["key"]

    listed = api.get("/api/guilds", **key_auth(key))

    assert listed.status_code == 200, listed.content
    assert [g["id"] for g in listed.json()] == [made.pk]
    problem(_launch(api, key_auth(key), blueprint_id, user_id=org["admin"]), 403, "permission_denied")


def test_a_key_does_not_see_another_organisations_guild(api, problem, key_auth, org, blueprint_id):
    # The key's creator belongs to both organisations; the key is for acme only.
    factories.organization("elsewhere", **{org["admin"]: "admin"})
    theirs = factories.guild("Theirs", org="elsewhere", user=org["outsider"])
    ours = factories.guild("Ours", org="acme", user=org["admin"])
    key = _create_key(api, org["admin"], scopes=["write"]).json()["key"]

    problem(api.get(f"/api/guilds/{theirs.pk}", **key_auth(key)), 404, "not_found")
    assert [g["id"] for g in api.get("/api/guilds", **key_auth(key)).json()] == [ours.pk]
    assert api.get(f"/api/guilds/{theirs.pk}", **factories.bearer(org["admin"])).status_code == 200
    problem(_launch(api, key_auth(key), blueprint_id, user_id=org["admin"], org_id="elsewhere"), 404, "not_found")


def test_a_key_of_another_organisation_cannot_launch_here(api, problem, key_auth, org, blueprint_id):
    factories.organization("elsewhere", **{org["member"]: "member"})
    _, key = factories.api_key("elsewhere", org["member"], scopes=["write"])

    response = _launch(api, key_auth(key), blueprint_id, user_id=org["member"])

    assert response.status_code == 404, response.content


def test_a_revoked_key_is_a_401(api, problem, key_auth, org):
    stored, key = factories.api_key("acme", org["member"])
    assert api.get("/api/auth/me", **key_auth(key)).status_code == 200

    ApiKey.objects.filter(pk=stored.pk).update(revoked_at=timezone.now())

    problem(api.get("/api/auth/me", **key_auth(key)), 401, "not_authenticated")
    problem(api.get("/api/guilds", **key_auth(key)), 401, "not_authenticated")


def test_an_expired_key_is_a_401(api, problem, key_auth, org):
    stored, key = factories.api_key("acme", org["member"], expires_at=timezone.now() + timedelta(days=1))
    assert api.get("/api/auth/me", **key_auth(key)).status_code == 200

    ApiKey.objects.filter(pk=stored.pk).update(expires_at=timezone.now() - timedelta(seconds=1))

    body = problem(api.get("/api/auth/me", **key_auth(key)), 401, "not_authenticated")
    assert "expired" in body["detail"]


def test_an_agent_bound_key_is_refused_for_general_use(api, problem, key_auth, org):
    _, key = factories.api_key("acme", org["member"], agent_registration_id="agent-42")

    problem(api.get("/api/auth/me", **key_auth(key)), 401, "not_authenticated")
    problem(api.get("/api/guilds", **key_auth(key)), 401, "not_authenticated")


def test_the_general_key_api_cannot_bind_a_key_to_an_external_agent(api, problem, org):
    # Only registering the agent makes its key: anyone else's key for it would let them act as the agent.
    body = problem(_create_key(api, org["member"], agent_registration_id="agent-42"), 400, "invalid")

    assert "agent_registration_id" in body["errors"]
    assert not ApiKey.objects.filter(agent_registration_id="agent-42").exists()


def test_an_unknown_key_is_a_401(api, problem, key_auth, org):
    _, key = factories.api_key("acme", org["member"])

    problem(api.get("/api/auth/me", **key_auth(key[:-2] + "xx")), 401, "not_authenticated")
    problem(api.get("/api/auth/me", **key_auth("gsk_" + "A" * 43)), 401, "not_authenticated")


def test_a_key_of_a_disabled_user_is_a_401(api, problem, key_auth, org):
    stored, key = factories.api_key("acme", org["member"])
    type(stored.created_by).objects.filter(pk=stored.created_by.pk).update(is_active=False)

    problem(api.get("/api/auth/me", **key_auth(key)), 401, "not_authenticated")


def test_last_use_is_recorded(api, key_auth, org):
    created = _create_key(api, org["member"]).json()
    assert _keys(api, org["member"])[0]["last_used_at"] is None
    before = timezone.now()

    assert api.get("/api/guilds", **key_auth(created["key"])).status_code == 200

    [listed] = _keys(api, org["member"])
    assert listed["last_used_at"] is not None
    assert ApiKey.objects.get(pk=created["id"]).last_used_at >= before


def test_a_key_that_lost_its_creators_membership_sees_nothing(api, problem, key_auth, org):
    made = factories.guild("Ours", org="acme", user=org["admin"])
    _, key = factories.api_key("acme", org["member"], scopes=["write"])
    api.delete(f"/api/organizations/acme/members/{org['member']}", **factories.bearer(org["admin"]))

    problem(api.get(f"/api/guilds/{made.pk}", **key_auth(key)), 404, "not_found")
    assert api.get("/api/auth/me", **key_auth(key)).json()["organizations"] == []


# --- revoking -------------------------------------------------------------------------------------


def test_an_admin_revokes_a_members_key_and_it_stops_working(api, problem, key_auth, org):
    created = _create_key(api, org["member"]).json()

    response = api.delete(f"/api/organizations/acme/api-keys/{created['id']}", **factories.bearer(org["admin"]))

    assert response.status_code == 204, response.content
    problem(api.get("/api/auth/me", **key_auth(created["key"])), 401, "not_authenticated")
    [listed] = _keys(api, org["admin"])
    assert listed["revoked_at"] is not None


def test_a_member_revokes_their_own_key(api, problem, key_auth, org):
    created = _create_key(api, org["member"]).json()

    response = api.delete(f"/api/organizations/acme/api-keys/{created['id']}", **factories.bearer(org["member"]))

    assert response.status_code == 204, response.content
    problem(api.get("/api/auth/me", **key_auth(created["key"])), 401, "not_authenticated")


def test_a_member_revoking_someone_elses_key_is_a_404(api, problem, key_auth, org):
    created = _create_key(api, org["other_member"]).json()

    problem(api.delete(f"/api/organizations/acme/api-keys/{created['id']}", **factories.bearer(org["member"])),
            404, "not_found")
    assert api.get("/api/auth/me", **key_auth(created["key"])).status_code == 200


def test_revoking_a_key_through_another_organisation_is_a_404(api, problem, key_auth, org):
    factories.organization("elsewhere", **{org["admin"]: "admin"})
    created = _create_key(api, org["member"]).json()

    problem(api.delete(f"/api/organizations/elsewhere/api-keys/{created['id']}", **factories.bearer(org["admin"])),
            404, "not_found")
    assert api.get("/api/auth/me", **key_auth(created["key"])).status_code == 200


def test_an_outsider_revoking_is_a_404(api, problem, key_auth, org):
    created = _create_key(api, org["member"]).json()

    problem(api.delete(f"/api/organizations/acme/api-keys/{created['id']}", **factories.bearer(org["outsider"])),
            404, "not_found")
    assert api.get("/api/auth/me", **key_auth(created["key"])).status_code == 200


def test_revoking_twice_is_harmless(api, org):
    created = _create_key(api, org["member"]).json()
    url = f"/api/organizations/acme/api-keys/{created['id']}"

    first = api.delete(url, **factories.bearer(org["admin"]))
    revoked_at = ApiKey.objects.get(pk=created["id"]).revoked_at
    second = api.delete(url, **factories.bearer(org["admin"]))

    assert (first.status_code, second.status_code) == (204, 204)
    assert ApiKey.objects.get(pk=created["id"]).revoked_at == revoked_at


def test_revoking_an_unknown_key_is_a_404(api, problem, org):
    problem(api.delete("/api/organizations/acme/api-keys/no-such-key", **factories.bearer(org["admin"])),
            404, "not_found")


def test_anonymous_cannot_revoke(api, problem, key_auth, org):
    created = _create_key(api, org["member"]).json()

    problem(api.delete(f"/api/organizations/acme/api-keys/{created['id']}"), 401, "not_authenticated")
    assert api.get("/api/auth/me", **key_auth(created["key"])).status_code == 200
