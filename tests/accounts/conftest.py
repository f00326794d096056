"""Fixtures for the identity layer's tests: authentication on, fast hashing, people with passwords,
sign-ins from addresses of their own (the sign-in throttle's counters are shared by the whole run)."""

from __future__ import annotations

import uuid
from collections.abc import Callable

import pytest
from rest_framework.test import APIClient

from tests import factories

PASSWORD = "correct horse battery staple"


@pytest.fixture(autouse=True)
def _fast_password_hashing(settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture(autouse=True)
def _auth_on(settings):
    """Production's rules: a credential or nothing. A test of development mode turns it back on itself."""
    settings.AUTH_DISABLED = False


def unique(prefix: str) -> str:
    """A name no other test uses (the throttle counts per username and per address, run-wide)."""
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def unique_address() -> str:
    raw = uuid.uuid4().bytes
    return f"10.{raw[0]}.{raw[1]}.{raw[2]}"


@pytest.fixture
def password() -> str:
    """The password every `person` signs in with."""
    return PASSWORD


@pytest.fixture
def new_name() -> Callable[[str], str]:
    return unique


@pytest.fixture
def new_address() -> Callable[[], str]:
    return unique_address


@pytest.fixture
def person() -> Callable[..., str]:
    """`person("alice")`: a user who signs in with PASSWORD; returns their (unique) username."""

    def make(prefix: str = "user", *, staff: bool = False) -> str:
        username = unique(prefix)
        factories.user(username, password=PASSWORD, staff=staff)
        return username

    return make


@pytest.fixture
def sign_in(api: APIClient) -> Callable[..., object]:
    """`sign_in(username, password)`: POST /api/auth/token from an address of its own (unless given)."""

    def post(username: str, password: str = PASSWORD, *, address: str | None = None):
        return api.post("/api/auth/token", {"username": username, "password": password},
                        REMOTE_ADDR=address or unique_address())

    return post


@pytest.fixture
def key_auth() -> Callable[[str], dict[str, str]]:
    """Headers for the test client that send an API key (or any credential) as a bearer."""

    def headers(credential: str) -> dict[str, str]:
        return {"HTTP_AUTHORIZATION": f"Bearer {credential}"}

    return headers
