"""GET /api/auth/me (who the caller is, with their organisations) and POST /api/users (site staff)."""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model

from tests import factories

pytestmark = pytest.mark.django_db


# --- GET /api/auth/me ------------------------------------------------------------------------


def test_me_shows_the_user_and_their_organisations_with_roles(api, new_name):
    username = new_name("alice")
    factories.user(username)
    get_user_model().objects.filter(username=username).update(email="alice@example.com")
    factories.organization("me-org-a", **{username: "admin"})
    factories.organization("me-org-b", **{username: "viewer"})
    factories.organization("me-org-c", **{new_name("someone"): "admin"})  # not hers

    response = api.get("/api/auth/me", **factories.bearer(username))

    assert response.status_code == 200, response.content
    body = response.json()
    assert body == {
        "id": get_user_model().objects.get(username=username).pk,
        "username": username,
        "email": "alice@example.com",
        "is_staff": False,
        "organizations": [{"id": "me-org-a", "name": "me-org-a", "role": "admin"},
                          {"id": "me-org-b", "name": "me-org-b", "role": "viewer"}],
    }


def test_me_without_organisations_is_an_empty_list(api, new_name):
    username = new_name("loner")
    factories.user(username)

    assert api.get("/api/auth/me", **factories.bearer(username)).json()["organizations"] == []


def test_me_shows_staff(api, new_name):
    username = new_name("staffer")
    factories.user(username, staff=True)

    assert api.get("/api/auth/me", **factories.bearer(username)).json()["is_staff"] is True


@pytest.mark.parametrize(("scopes", "role"), [(["read"], "viewer"), (["write"], "member"), (["read", "write"], "member")])
def test_an_api_key_shows_only_its_organisation_at_its_capped_role(api, key_auth, new_name, scopes, role):
    username = new_name("alice")
    factories.organization("me-key-org", **{username: "admin"})
    factories.organization("me-other-org", **{username: "admin"})
    _, key = factories.api_key("me-key-org", username, scopes=scopes)

    response = api.get("/api/auth/me", **key_auth(key))

    assert response.status_code == 200, response.content
    body = response.json()
    assert body["username"] == username
    assert body["organizations"] == [{"id": "me-key-org", "name": "me-key-org", "role": role}]


def test_a_key_never_raises_its_creators_role(api, key_auth, new_name):
    username = new_name("viewer")
    factories.organization("me-key-org", **{username: "member"})
    _, key = factories.api_key("me-key-org", username, scopes=["write"])
    factories.organization("me-key-org", **{username: "viewer"})  # demoted after making the key

    assert api.get("/api/auth/me", **key_auth(key)).json()["organizations"] == [
        {"id": "me-key-org", "name": "me-key-org", "role": "viewer"}]


def test_a_key_of_a_staff_user_is_not_staff(api, key_auth, new_name):
    username = new_name("staffer")
    factories.user(username, staff=True)
    factories.organization("me-key-org", **{username: "admin"})
    _, key = factories.api_key("me-key-org", username)

    assert api.get("/api/auth/me", **key_auth(key)).json()["is_staff"] is False


def test_me_anonymous_is_a_401(api, problem):
    problem(api.get("/api/auth/me"), 401, "not_authenticated")


# --- POST /api/users -------------------------------------------------------------------------


@pytest.fixture
def staff(new_name) -> str:
    username = new_name("staff")
    factories.user(username, staff=True)
    return username


def test_staff_create_a_user_who_can_then_sign_in(api, staff, sign_in, new_name):
    username = new_name("newcomer")

    response = api.post("/api/users", {"username": username, "password": "a long enough secret",
                                       "email": "new@example.com"}, **factories.bearer(staff))

    assert response.status_code == 201, response.content
    body = response.json()
    assert body == {"id": get_user_model().objects.get(username=username).pk, "username": username,
                    "email": "new@example.com", "is_staff": False}
    assert "a long enough secret" not in response.content.decode()
    assert sign_in(username, "a long enough secret").status_code == 200


def test_email_is_optional(api, staff, new_name):
    response = api.post("/api/users", {"username": new_name("bob"), "password": "a long enough secret"},
                        **factories.bearer(staff))

    assert response.status_code == 201, response.content
    assert response.json()["email"] == ""


def test_a_body_cannot_make_staff(api, staff, new_name):
    username = new_name("climber")

    response = api.post("/api/users", {"username": username, "password": "a long enough secret", "is_staff": True},
                        **factories.bearer(staff))

    assert response.status_code == 201, response.content
    assert response.json()["is_staff"] is False
    assert get_user_model().objects.get(username=username).is_staff is False


def test_a_non_staff_user_cannot_create_users(api, problem, new_name):
    caller, username = new_name("plain"), new_name("newcomer")
    factories.user(caller)

    response = api.post("/api/users", {"username": username, "password": "a long enough secret"},
                        **factories.bearer(caller))

    problem(response, 403, "permission_denied")
    assert not get_user_model().objects.filter(username=username).exists()


def test_an_org_admin_who_is_not_staff_cannot_create_users(api, problem, new_name):
    caller = new_name("admin")
    factories.organization("users-org", **{caller: "admin"})

    problem(api.post("/api/users", {"username": new_name("x"), "password": "a long enough secret"},
                     **factories.bearer(caller)), 403, "permission_denied")


def test_an_api_key_of_a_staff_user_cannot_create_users(api, problem, key_auth, staff, new_name):
    factories.organization("users-org", **{staff: "admin"})
    _, key = factories.api_key("users-org", staff)

    problem(api.post("/api/users", {"username": new_name("x"), "password": "a long enough secret"}, **key_auth(key)),
            403, "permission_denied")


def test_anonymous_cannot_create_users(api, problem, new_name):
    username = new_name("newcomer")

    problem(api.post("/api/users", {"username": username, "password": "a long enough secret"}), 401, "not_authenticated")
    assert not get_user_model().objects.filter(username=username).exists()


def test_a_taken_username_is_a_409(api, problem, staff, new_name):
    username = new_name("taken")
    factories.user(username, password="the original password")

    body = problem(api.post("/api/users", {"username": username, "password": "a long enough secret"},
                            **factories.bearer(staff)), 409, "conflict")

    assert username in body["detail"]
    assert get_user_model().objects.get(username=username).check_password("the original password")


@pytest.mark.parametrize("username", ["a b", "x" * 129, "", "semi;colon", "ünïcode", "slash/y"])
def test_an_invalid_username_is_a_400(api, problem, staff, username):
    body = problem(api.post("/api/users", {"username": username, "password": "a long enough secret"},
                            **factories.bearer(staff)), 400, "invalid")

    assert "username" in body["errors"]
    assert not get_user_model().objects.filter(username=username).exists()


def test_the_longest_valid_username_is_accepted(api, staff):
    username = "y" * 120 + "_.@+-Z09"  # 128 characters of every allowed kind

    response = api.post("/api/users", {"username": username, "password": "a long enough secret"},
                        **factories.bearer(staff))

    assert response.status_code == 201, response.content
    assert response.json()["username"] == username


@pytest.mark.parametrize("password", ["short", "1234567"])
def test_a_weak_password_is_a_400(api, problem, staff, new_name, password):
    username = new_name("weak")

    body = problem(api.post("/api/users", {"username": username, "password": password}, **factories.bearer(staff)),
                   400, "invalid")

    assert "password" in body["errors"]
    assert not get_user_model().objects.filter(username=username).exists()


def test_a_missing_password_is_a_400(api, problem, staff, new_name):
    body = problem(api.post("/api/users", {"username": new_name("nopass")}, **factories.bearer(staff)), 400, "invalid")

    assert "password" in body["errors"]


def test_an_invalid_email_is_a_400(api, problem, staff, new_name):
    body = problem(api.post("/api/users", {"username": new_name("x"), "password": "a long enough secret",
                                           "email": "not an address"}, **factories.bearer(staff)), 400, "invalid")

    assert "email" in body["errors"]
