"""The site's own pages carry a strict Content-Security-Policy, and the sign-in page is throttled like the token
endpoint, under the name sign-in would use."""

from __future__ import annotations

import uuid

import pytest

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize("path", ["/chat/", "/dashboard/", "/accounts/login/"])
def test_pages_allow_scripts_and_styles_from_the_site_only(client, settings, path):
    settings.AUTH_DISABLED = False
    policy = client.get(path)["Content-Security-Policy"]
    assert "script-src 'self'" in policy
    assert "object-src 'none'" in policy
    assert "frame-ancestors 'none'" in policy


def test_spaces_around_a_username_do_not_give_fresh_sign_in_attempts(client, settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    settings.GUILDSITE_TOKEN_RATE_PER_MINUTE = 3
    name = f"victim-{uuid.uuid4().hex[:8]}"
    for n, variant in enumerate([name, f"{name} ", f" {name}", f"{name}  "]):
        response = client.post("/accounts/login/", {"username": variant, "password": "guess"},
                               REMOTE_ADDR=f"10.9.{n}.1")
    assert response.status_code == 429
    assert int(response["Retry-After"]) >= 1


def test_the_favicon_that_browsers_ask_for_by_default_is_the_sites_icon(client):
    from django.contrib.staticfiles import finders

    answer = client.get("/favicon.ico")
    assert answer.status_code == 301
    assert answer["Location"] == "/static/guildsite/favicon.svg"
    assert finders.find("guildsite/favicon.svg")
