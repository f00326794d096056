"""The account commands (for people without the API): what they print works where the API expects it."""

from __future__ import annotations

import io
import sys
from datetime import timedelta

import jwt
import pytest
from django.conf import settings as django_settings
from django.contrib.auth import get_user_model
from django.core.management import CommandError, call_command

from guildsite.accounts.models import ApiKey, Membership, Organization
from tests import factories

pytestmark = pytest.mark.django_db


def run(*args: str, stdin: str | None = None) -> str:
    out = io.StringIO()
    options = {"stdout": out}
    if stdin is not None:
        options["stdin"] = io.StringIO(stdin)
    call_command(*args, **options)
    return out.getvalue()


@pytest.fixture
def piped_stdin(monkeypatch):
    """What `echo secret | manage.py create_user NAME --password-stdin` gives the process."""

    def pipe(text: str) -> None:
        monkeypatch.setattr(sys, "stdin", io.StringIO(text))

    return pipe


def _me(api, credential: str):
    return api.get("/api/auth/me", HTTP_AUTHORIZATION=f"Bearer {credential}")


# --- create_user ------------------------------------------------------------------------------


def test_create_user_reads_the_password_from_the_stdin_it_is_given(new_name, sign_in):
    username = new_name("carol")

    output = run("create_user", username, "--password-stdin", "--email", "carol@example.com",
                 stdin="a long enough secret\n")

    assert username in output
    user = get_user_model().objects.get(username=username)
    assert (user.email, user.is_staff) == ("carol@example.com", False)
    assert sign_in(username, "a long enough secret").status_code == 200


def test_create_user_reads_a_piped_password(new_name, sign_in, piped_stdin):
    username = new_name("carol")
    piped_stdin("a long enough secret\n")

    output = run("create_user", username, "--password-stdin")

    assert output.strip() == f"created user {username}"
    assert sign_in(username, "a long enough secret").status_code == 200


def test_create_user_keeps_spaces_in_the_password(new_name, sign_in, piped_stdin):
    username = new_name("carol")
    piped_stdin("  spaced out secret  \n")

    run("create_user", username, "--password-stdin")

    assert sign_in(username, "  spaced out secret  ").status_code == 200


def test_create_user_makes_staff(api, new_name, piped_stdin):
    username = new_name("staffer")
    piped_stdin("a long enough secret\n")

    output = run("create_user", username, "--staff", "--password-stdin")

    assert "(staff)" in output
    assert get_user_model().objects.get(username=username).is_staff
    assert _me(api, factories.token(username)).json()["is_staff"] is True


@pytest.mark.parametrize(("username", "password", "message"), [
    ("a b", "a long enough secret", "not a valid user id"),
    ("x" * 129, "a long enough secret", "not a valid user id"),
    ("{fresh}", "short", "too short"),
])
def test_create_user_refuses_bad_input(new_name, piped_stdin, username, password, message):
    username = username.replace("{fresh}", new_name("weak"))
    piped_stdin(password + "\n")

    with pytest.raises(CommandError, match=message):
        run("create_user", username, "--password-stdin")
    assert not get_user_model().objects.filter(username=username).exists()


def test_create_user_refuses_a_taken_username(new_name, piped_stdin):
    username = new_name("taken")
    factories.user(username, password="the original password")
    piped_stdin("a long enough secret\n")

    with pytest.raises(CommandError, match="already exists"):
        run("create_user", username, "--password-stdin")
    assert get_user_model().objects.get(username=username).check_password("the original password")


# --- create_organization -------------------------------------------------------------------------


def test_create_organization_prints_the_derived_id_and_makes_the_user_admin(api, new_name):
    admin = new_name("admin")
    factories.user(admin)

    first = run("create_organization", "Acme Labs", "--admin", admin).strip()
    second = run("create_organization", "Acme Labs", "--admin", admin).strip()

    assert (first, second) == ("acme-labs", "acme-labs-2")
    assert {"id": "acme-labs", "name": "Acme Labs", "role": "admin"} in _me(
        api, factories.token(admin)).json()["organizations"]


def test_create_organization_with_a_given_id(new_name):
    admin = new_name("admin")
    factories.user(admin)

    assert run("create_organization", "Acme Labs", "--admin", admin, "--id", "acme").strip() == "acme"
    assert Organization.objects.get(pk="acme").name == "Acme Labs"


def test_create_organization_refuses_a_taken_id(new_name):
    admin = new_name("admin")
    factories.organization("acme", **{admin: "admin"})

    with pytest.raises(CommandError, match="acme"):
        run("create_organization", "Other", "--admin", admin, "--id", "acme")
    assert Organization.objects.get(pk="acme").name == "acme"


def test_create_organization_refuses_an_invalid_id(new_name):
    admin = new_name("admin")
    factories.user(admin)

    with pytest.raises(CommandError, match="not a valid organisation id"):
        run("create_organization", "Acme", "--admin", admin, "--id", "Not_A_Slug")


def test_create_organization_needs_an_existing_admin(new_name):
    with pytest.raises(CommandError, match="no user"):
        run("create_organization", "Acme Labs", "--admin", new_name("ghost"))
    assert not Organization.objects.filter(pk="acme-labs").exists()


# --- add_member --------------------------------------------------------------------------------


def test_add_member_with_a_role(api, new_name):
    admin, viewer = new_name("admin"), new_name("viewer")
    factories.organization("acme", **{admin: "admin"})
    factories.user(viewer)

    output = run("add_member", "acme", viewer, "--role", "viewer")

    assert output.strip() == f"{viewer} is now viewer in acme"
    assert {"id": "acme", "name": "acme", "role": "viewer"} in _me(api, factories.token(viewer)).json()["organizations"]


def test_add_member_defaults_to_member(new_name):
    admin, person = new_name("admin"), new_name("person")
    factories.organization("acme", **{admin: "admin"})
    factories.user(person)

    run("add_member", "acme", person)

    assert Membership.objects.get(organization_id="acme", user__username=person).role == "member"


@pytest.mark.parametrize(("organization", "who", "message"), [
    ("no-such-org", "person", "no organisation"),
    ("acme", "ghost", "no user"),
    ("acme", "admin", "already"),
])
def test_add_member_refuses(new_name, organization, who, message):
    people = {"admin": new_name("admin"), "person": new_name("person"), "ghost": new_name("ghost")}
    factories.organization("acme", **{people["admin"]: "admin"})
    factories.user(people["person"])

    with pytest.raises(CommandError, match=message):
        run("add_member", organization, people[who])
    assert Membership.objects.get(organization_id="acme", user__username=people["admin"]).role == "admin"


def test_add_member_refuses_an_unknown_role(new_name):
    admin, person = new_name("admin"), new_name("person")
    factories.organization("acme", **{admin: "admin"})
    factories.user(person)

    with pytest.raises(CommandError):
        run("add_member", "acme", person, "--role", "owner")


# --- create_api_key ----------------------------------------------------------------------------


def test_create_api_key_prints_a_key_that_works_as_a_bearer(api, new_name):
    member = new_name("member")
    factories.organization("acme", **{member: "member"})
    factories.organization("elsewhere", **{member: "admin"})

    key = run("create_api_key", "acme", "--user", member, "--scope", "write", "--name", "deploys").strip()

    assert key.startswith("gsk_")
    me = _me(api, key)
    assert me.status_code == 200, me.content
    assert me.json()["username"] == member
    assert me.json()["organizations"] == [{"id": "acme", "name": "acme", "role": "member"}]
    stored = ApiKey.objects.get(created_by__username=member)
    assert (stored.name, stored.scopes, stored.expires_at) == ("deploys", ["write"], None)


def test_create_api_key_defaults_to_read(api, new_name):
    admin = new_name("admin")
    factories.organization("acme", **{admin: "admin"})

    key = run("create_api_key", "acme", "--user", admin).strip()

    assert _me(api, key).json()["organizations"] == [{"id": "acme", "name": "acme", "role": "viewer"}]


def test_create_api_key_with_an_expiry(api, new_name):
    admin = new_name("admin")
    factories.organization("acme", **{admin: "admin"})

    key = run("create_api_key", "acme", "--user", admin, "--expires-in-days", "2").strip()

    stored = ApiKey.objects.get(created_by__username=admin)
    assert timedelta(days=1, hours=23) < stored.expires_at - stored.created_at <= timedelta(days=2, minutes=1)
    assert _me(api, key).status_code == 200


@pytest.mark.parametrize(("organization", "who", "message"), [
    ("no-such-org", "member", "no organisation"),
    ("acme", "ghost", "no user"),
    ("acme", "outsider", "not in acme"),
])
def test_create_api_key_refuses(new_name, organization, who, message):
    people = {"member": new_name("member"), "ghost": new_name("ghost"), "outsider": new_name("outsider")}
    factories.organization("acme", **{people["member"]: "member"})
    factories.user(people["outsider"])

    with pytest.raises(CommandError, match=message):
        run("create_api_key", organization, "--user", people[who], "--scope", "write")
    assert not ApiKey.objects.exists()


# --- mint_token --------------------------------------------------------------------------------


def test_mint_token_prints_tokens_that_work(api, new_name):
    first, second = new_name("bench1"), new_name("bench2")
    factories.user(first)
    factories.user(second)

    lines = run("mint_token", first, second).split()

    assert len(lines) == 2
    assert [_me(api, token).json()["username"] for token in lines] == [first, second]
    claims = jwt.decode(lines[0], django_settings.GUILDSITE_JWT_SECRET, algorithms=["HS256"], issuer="guildsite")
    assert claims["exp"] - claims["iat"] == 30 * 60
    assert claims["sub"] == str(get_user_model().objects.get(username=first).pk)


def test_mint_token_lifetime(api, new_name):
    username = new_name("bench")
    factories.user(username)

    token = run("mint_token", username, "--minutes", "5").strip()

    claims = jwt.decode(token, django_settings.GUILDSITE_JWT_SECRET, algorithms=["HS256"], issuer="guildsite")
    assert claims["exp"] - claims["iat"] == 5 * 60
    assert _me(api, token).status_code == 200


def test_mint_token_refuses_unknown_and_disabled_users(new_name):
    active, disabled, ghost = new_name("active"), new_name("disabled"), new_name("ghost")
    factories.user(active)
    factories.user(disabled)
    get_user_model().objects.filter(username=disabled).update(is_active=False)

    with pytest.raises(CommandError) as refused:
        run("mint_token", active, disabled, ghost)

    assert disabled in str(refused.value)
    assert ghost in str(refused.value)
    assert active not in str(refused.value)
