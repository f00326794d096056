"""Fixtures every test directory may use. Keep this small: fixtures for one area live in its directory."""

from __future__ import annotations

import pytest
from rest_framework.test import APIClient


@pytest.fixture
def api() -> APIClient:
    """A REST client that sends JSON bodies, as the seed's curl requests do."""
    client = APIClient()
    client.default_format = "json"
    return client


def _check_problem(response, status: int, code: str | None = None) -> dict:
    assert response.status_code == status, response.content
    assert response["Content-Type"].startswith("application/json"), response["Content-Type"]
    body = response.json()
    assert body["status"] == status
    assert isinstance(body["code"], str)
    assert isinstance(body["detail"], str)
    assert body["detail"]
    if code is not None:
        assert body["code"] == code
    return body


@pytest.fixture
def problem():
    """`problem(response, 404, "not_found")` checks the one error body and returns it."""
    return _check_problem


@pytest.fixture(scope="session", autouse=True)
def _runtime_teardown(django_db_setup):  # after the test database is made, so torn down before it is dropped
    """At the end, stop what the runtime still runs and close its database sessions (or PostgreSQL
    refuses to drop the test database while they are open)."""
    yield
    from guilds.engines import engine_named
    from guilds.runtime import loop as runtime_loop
    from guilds.runtime.store import close_connections

    runtime_loop.run(engine_named("inprocess").shutdown())
    close_connections()
