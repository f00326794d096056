"""POST /api/auth/token, /token/refresh and /logout, and how a bearer JWT is checked on every request."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import jwt
import pytest
from django.conf import settings as django_settings
from django.contrib.auth import get_user_model

from guildsite.accounts.tokens import access_token_encode, password_stamp
from tests import factories

pytestmark = pytest.mark.django_db


def _claims(token: str) -> dict:
    return jwt.decode(token, django_settings.GUILDSITE_JWT_SECRET, algorithms=["HS256"], issuer="guildsite")


def _me(api, access: str):
    return api.get("/api/auth/me", HTTP_AUTHORIZATION=f"Bearer {access}")


def _refused(problem, response) -> dict:
    """A credential refused the documented way: 401 not_authenticated, the error body, a Bearer challenge."""
    body = problem(response, 401, "not_authenticated")
    assert set(body) == {"status", "code", "detail"}
    assert response.has_header("WWW-Authenticate")
    assert response["WWW-Authenticate"].lower().startswith("bearer")
    return body


# --- issuing -------------------------------------------------------------------------------


def test_sign_in_issues_an_hs256_access_token_with_the_documented_claims(api, person, sign_in):
    username = person("alice")
    user = get_user_model().objects.get(username=username)

    response = sign_in(username)

    assert response.status_code == 200, response.content
    body = response.json()
    assert set(body) == {"access", "refresh", "expires_in"}
    assert body["expires_in"] == 1800
    assert jwt.get_unverified_header(body["access"])["alg"] == "HS256"
    claims = _claims(body["access"])
    assert claims["sub"] == str(user.pk)
    assert claims["username"] == username
    assert claims["iss"] == "guildsite"
    assert claims["typ"] == "access"
    assert claims["exp"] - claims["iat"] == 1800
    assert abs(claims["exp"] - (datetime.now(UTC) + timedelta(minutes=30)).timestamp()) < 60
    assert body["refresh"] != body["access"]


def test_the_issued_access_token_signs_requests_in(api, person, sign_in):
    username = person("alice")

    access = sign_in(username).json()["access"]
    me = _me(api, access)

    assert me.status_code == 200, me.content
    assert me.json()["username"] == username


def test_every_sign_in_gets_its_own_tokens(api, person, sign_in):
    username = person("alice")

    first, second = sign_in(username).json(), sign_in(username).json()

    assert first["refresh"] != second["refresh"]
    assert first["access"] != second["access"]


@pytest.mark.parametrize("wrong", ["wrong password!", "CORRECT HORSE BATTERY STAPLE", "correct horse battery staple "])
def test_a_wrong_password_is_a_401_without_tokens(api, problem, person, sign_in, wrong):
    username = person("alice")

    body = problem(sign_in(username, wrong), 401, "not_authenticated")

    assert "access" not in body
    assert "refresh" not in body


def test_an_empty_password_is_a_400(api, problem, person, sign_in):
    body = problem(sign_in(person("alice"), ""), 400, "invalid")

    assert "password" in body["errors"]


def test_an_unknown_user_is_refused_exactly_like_a_wrong_password(api, problem, person, sign_in, new_name):
    username = person("alice")

    unknown = problem(sign_in(new_name("nobody")), 401, "not_authenticated")
    wrong = problem(sign_in(username, "wrong password!"), 401, "not_authenticated")

    assert unknown == wrong  # nothing tells which usernames exist


def test_a_disabled_account_cannot_sign_in(api, problem, person, sign_in):
    username = person("alice")
    get_user_model().objects.filter(username=username).update(is_active=False)

    problem(sign_in(username), 401, "not_authenticated")


def test_a_user_without_a_password_cannot_sign_in(api, problem, sign_in, new_name):
    username = new_name("made-on-first-use")
    factories.user(username)  # development's users are made without a usable password

    problem(sign_in(username, ""), 400, "invalid")
    problem(sign_in(username, "anything at all"), 401, "not_authenticated")


def test_a_body_without_a_username_is_a_400(api, problem, new_address, password):
    body = problem(api.post("/api/auth/token", {"password": password}, REMOTE_ADDR=new_address()), 400, "invalid")

    assert "username" in body["errors"]


# --- refresh and logout ------------------------------------------------------------------------


def test_refresh_gives_a_new_working_access_token(api, person, sign_in):
    username = person("alice")
    pair = sign_in(username).json()

    response = api.post("/api/auth/token/refresh", {"refresh": pair["refresh"]})

    assert response.status_code == 200, response.content
    body = response.json()
    assert set(body) == {"access", "expires_in"}
    assert body["expires_in"] == 1800
    assert _claims(body["access"])["username"] == username
    assert _me(api, body["access"]).json()["username"] == username


def test_a_refresh_token_can_be_used_more_than_once_until_logout(api, person, sign_in):
    pair = sign_in(person("alice")).json()

    assert api.post("/api/auth/token/refresh", {"refresh": pair["refresh"]}).status_code == 200
    assert api.post("/api/auth/token/refresh", {"refresh": pair["refresh"]}).status_code == 200


def test_after_logout_the_refresh_token_is_refused(api, problem, person, sign_in):
    pair = sign_in(person("alice")).json()

    logout = api.post("/api/auth/logout", {"refresh": pair["refresh"]})

    assert logout.status_code == 204, logout.content
    assert logout.content == b""
    problem(api.post("/api/auth/token/refresh", {"refresh": pair["refresh"]}), 401, "not_authenticated")


def test_logout_revokes_only_that_sign_in(api, person, sign_in):
    username = person("alice")
    phone, laptop = sign_in(username).json(), sign_in(username).json()

    api.post("/api/auth/logout", {"refresh": phone["refresh"]})

    assert api.post("/api/auth/token/refresh", {"refresh": laptop["refresh"]}).status_code == 200


def test_logout_ends_that_sign_ins_access_tokens_at_once(api, problem, person, sign_in):
    username = person("alice")
    phone, laptop = sign_in(username).json(), sign_in(username).json()
    refreshed = api.post("/api/auth/token/refresh", {"refresh": phone["refresh"]}).json()["access"]
    assert _me(api, refreshed).status_code == 200

    api.post("/api/auth/logout", {"refresh": phone["refresh"]})

    for access in (phone["access"], refreshed):
        assert "logged out" in _refused(problem, _me(api, access))["detail"]
    assert _me(api, laptop["access"]).status_code == 200


def test_logging_out_twice_is_harmless(api, problem, person, sign_in):
    pair = sign_in(person("alice")).json()

    first = api.post("/api/auth/logout", {"refresh": pair["refresh"]})
    second = api.post("/api/auth/logout", {"refresh": pair["refresh"]})

    assert (first.status_code, second.status_code) == (204, 204)
    problem(api.post("/api/auth/token/refresh", {"refresh": pair["refresh"]}), 401, "not_authenticated")


@pytest.mark.parametrize("refresh", ["gsr_not-a-token-we-issued", "nonsense"])
def test_an_unknown_refresh_token_is_a_401(api, problem, refresh):
    problem(api.post("/api/auth/token/refresh", {"refresh": refresh}), 401, "not_authenticated")
    problem(api.post("/api/auth/logout", {"refresh": refresh}), 401, "not_authenticated")


def test_an_access_token_is_not_a_refresh_token(api, problem, person, sign_in):
    pair = sign_in(person("alice")).json()

    response = api.post("/api/auth/token/refresh", {"refresh": pair["access"]})

    assert response.status_code in {400, 401}, response.content
    assert "access" not in response.json()


def test_a_refresh_token_is_not_a_bearer_credential(api, problem, person, sign_in):
    pair = sign_in(person("alice")).json()

    _refused(problem, _me(api, pair["refresh"]))


def test_a_disabled_account_cannot_refresh(api, problem, person, sign_in):
    username = person("alice")
    pair = sign_in(username).json()
    get_user_model().objects.filter(username=username).update(is_active=False)

    problem(api.post("/api/auth/token/refresh", {"refresh": pair["refresh"]}), 401, "not_authenticated")


# --- bad access tokens ---------------------------------------------------------------------


def _valid_claims(user) -> dict:
    now = datetime.now(UTC)
    return {"sub": str(user.pk), "username": user.get_username(), "iss": "guildsite", "typ": "access",
            "iat": now, "exp": now + timedelta(minutes=30), "pwd": password_stamp(user)}


def _expired(user) -> str:
    return access_token_encode(user=user, lifetime=timedelta(seconds=-60))[0]


def _tampered(user) -> str:
    """A valid token whose payload was edited (to another user) after signing."""
    other = factories.user(f"{user.get_username()}-victim")
    header, _, signature = access_token_encode(user=user)[0].split(".")
    forged_payload = jwt.encode(_valid_claims(other), "any key at all, long enough for HS256", algorithm="HS256").split(".")[1]
    return f"{header}.{forged_payload}.{signature}"


def _alg_none(user) -> str:
    return jwt.encode(_valid_claims(user), None, algorithm="none")


def _wrong_key(user) -> str:
    return jwt.encode(_valid_claims(user), "not-the-site-secret-" * 3, algorithm="HS256")


def _other_username(user) -> str:
    """Signed with the site's key, but naming another username than the `sub` user's."""
    return jwt.encode({**_valid_claims(user), "username": "someone-else"}, django_settings.GUILDSITE_JWT_SECRET,
                      algorithm="HS256")


def _inactive(user) -> str:
    token = access_token_encode(user=user)[0]
    get_user_model().objects.filter(pk=user.pk).update(is_active=False)
    return token


def _deleted(user) -> str:
    token = access_token_encode(user=user)[0]
    get_user_model().objects.filter(pk=user.pk).delete()
    return token


def _wrong_issuer(user) -> str:
    return jwt.encode({**_valid_claims(user), "iss": "someone-else"}, django_settings.GUILDSITE_JWT_SECRET,
                      algorithm="HS256")


def _not_an_access_token(user) -> str:
    return jwt.encode({**_valid_claims(user), "typ": "refresh"}, django_settings.GUILDSITE_JWT_SECRET,
                      algorithm="HS256")


def _without_expiry(user) -> str:
    claims = _valid_claims(user)
    del claims["exp"]
    return jwt.encode(claims, django_settings.GUILDSITE_JWT_SECRET, algorithm="HS256")


def _other_algorithm(user) -> str:
    return jwt.encode(_valid_claims(user), django_settings.GUILDSITE_JWT_SECRET, algorithm="HS512")


def _garbage(user) -> str:
    return "abc.def.ghi"


BAD_TOKENS = [_expired, _tampered, _alg_none, _wrong_key, _other_username, _inactive, _deleted, _wrong_issuer,
              _not_an_access_token, _without_expiry, _other_algorithm, _garbage]


@pytest.mark.parametrize("make_token", BAD_TOKENS, ids=lambda f: f.__name__.strip("_"))
def test_a_bad_access_token_is_a_401(api, problem, new_name, make_token):
    user = factories.user(new_name("alice"))
    token = make_token(user)

    body = _refused(problem, _me(api, token))

    assert "access" not in body


def test_an_expired_token_says_it_expired(api, problem, new_name):
    user = factories.user(new_name("alice"))

    body = _refused(problem, _me(api, _expired(user)))

    assert "expired" in body["detail"]


@pytest.mark.parametrize("header", ["Basic YWxpY2U6cGFzc3dvcmQ=", "Bearer", "Bearer   ", "Token abc"])
def test_a_malformed_authorization_header_is_a_401(api, problem, header):
    _refused(problem, api.get("/api/auth/me", HTTP_AUTHORIZATION=header))


def test_a_bad_token_is_refused_even_where_no_sign_in_is_needed(api, problem, new_name):
    """A credential that is present but bad is refused, never ignored (here on an open read)."""
    user = factories.user(new_name("alice"))

    _refused(problem, api.get("/api/guilds", HTTP_AUTHORIZATION=f"Bearer {_wrong_key(user)}"))


# --- no credentials --------------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/api/guilds", "/api/auth/me", "/api/organizations", "/catalog/blueprints/"])
def test_without_credentials_a_request_is_a_401_with_a_bearer_challenge(api, problem, path):
    _refused(problem, api.get(path))


def test_with_auth_on_x_user_id_is_ignored(api, problem, new_name):
    username = new_name("alice")
    factories.user(username)

    _refused(problem, api.get("/api/auth/me", HTTP_X_USER_ID=username))
    _refused(problem, api.get("/api/auth/me", {"user_id": username}))


def test_in_development_x_user_id_names_the_caller(api, settings, new_name):
    settings.AUTH_DISABLED = True
    username = new_name("alice")

    response = api.get("/api/auth/me", HTTP_X_USER_ID=username)

    assert response.status_code == 200, response.content
    assert response.json()["username"] == username


# --- throttling ----------------------------------------------------------------------------


def _attempt_counted(response) -> None:
    """An attempt under the limit: answered on its merits (the 401 itself is test_a_wrong_password_...'s job)."""
    assert response.status_code != 429, response.content


def _throttled(problem, response) -> int:
    problem(response, 429, "throttled")
    wait = int(response["Retry-After"])
    # The attempts that filled the window have to age out of a sliding minute: at most two windows.
    assert 1 <= wait <= 120
    return wait


def test_one_username_from_many_addresses_is_throttled(api, problem, settings, person, sign_in, new_address, password):
    settings.GUILDSITE_TOKEN_RATE_PER_MINUTE = 3
    username = person("target")

    for _ in range(3):
        _attempt_counted(sign_in(username, "guess!guess!", address=new_address()))
    over = sign_in(username, password, address=new_address())

    _throttled(problem, over)  # even the right password waits
    assert "access" not in over.json()


def test_many_usernames_from_one_address_are_throttled(api, problem, settings, person, sign_in, new_name, new_address,
                                                      password):
    settings.GUILDSITE_TOKEN_RATE_PER_MINUTE = 3
    address = new_address()
    victim = person("victim")

    for _ in range(3):
        _attempt_counted(sign_in(new_name("sprayed"), "Password1!", address=address))
    over = sign_in(victim, password, address=address)

    _throttled(problem, over)
    # Another address may still sign the same user in: it was the address that was limited.
    assert sign_in(victim, password, address=new_address()).status_code == 200


def test_attempts_under_the_limit_are_not_throttled(api, problem, settings, person, sign_in, new_address, password):
    settings.GUILDSITE_TOKEN_RATE_PER_MINUTE = 3
    username, address = person("careful"), new_address()

    _attempt_counted(sign_in(username, "typo typo typo", address=address))
    _attempt_counted(sign_in(username, "typo typo typo", address=address))
    response = sign_in(username, password, address=address)

    assert response.status_code == 200, response.content


def test_the_default_limit_is_ten_a_minute(api, problem, person, sign_in, new_address):
    assert django_settings.GUILDSITE_TOKEN_RATE_PER_MINUTE == 10
    username = person("patient")

    for _ in range(10):
        assert sign_in(username, address=new_address()).status_code == 200
    _throttled(problem, sign_in(username, address=new_address()))


def test_a_throttled_username_does_not_throttle_other_users(api, problem, settings, person, sign_in, new_address):
    settings.GUILDSITE_TOKEN_RATE_PER_MINUTE = 3
    target, bystander = person("target"), person("bystander")

    for _ in range(4):
        sign_in(target, "guess!guess!", address=new_address())

    assert sign_in(bystander, address=new_address()).status_code == 200
