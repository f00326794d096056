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
def _runtime_teardown(django_db_setup, django_db_blocker):  # made after the test database, so torn down first
    """At the end, stop what the runtime still runs and close its database sessions (or PostgreSQL
    refuses to drop the test database while they are open)."""
    yield
    from guilds.engines import engine_named
    from guilds.runtime import loop as runtime_loop
    from guilds.runtime.store import close_connections

    runtime_loop.run(engine_named("inprocess").shutdown())
    close_connections()
    # The sockets' async ORM calls ran on asgiref's one sync thread, which holds a connection too.
    from asgiref.sync import SyncToAsync
    from django.db import connections

    SyncToAsync.single_thread_executor.submit(connections.close_all).result(timeout=10)
    with django_db_blocker.unblock():
        _wait_for_other_sessions_to_end()


def _wait_for_other_sessions_to_end(timeout: float = 10.0) -> None:
    """PostgreSQL drops the test database only when no one else is connected (worker processes
    that just exited may still be leaving)."""
    import time

    from django.db import connection

    if connection.vendor != "postgresql":
        return
    deadline = time.monotonic() + timeout
    with connection.cursor() as cursor:
        while time.monotonic() < deadline:
            cursor.execute("select count(*) from pg_stat_activity where datname = current_database() "
                           "and pid <> pg_backend_pid()")
            if cursor.fetchone()[0] == 0:
                return
            time.sleep(0.1)


@pytest.fixture(scope="session", autouse=True)
def _flush_tried_again_after_a_deadlock():
    """A transactional test's teardown empties every table (one TRUNCATE) while the session's Celery workers may
    still be writing what the test started; PostgreSQL ends such a lock cycle by failing one side, and a failed
    TRUNCATE would fail the test. Tried again, as PostgreSQL advises for a deadlock: the writer's side has ended."""
    from django.db import OperationalError
    from django.test import TransactionTestCase

    original = TransactionTestCase._fixture_teardown

    def deadlock(exc: BaseException | None) -> bool:
        while exc is not None:
            if isinstance(exc, OperationalError) and "deadlock detected" in str(exc):
                return True
            exc = exc.__cause__ or exc.__context__
        return False

    def fixture_teardown(self) -> None:
        for attempt in range(1, 4):
            try:
                return original(self)
            except Exception as exc:
                if attempt == 3 or not deadlock(exc):
                    raise

    TransactionTestCase._fixture_teardown = fixture_teardown
    yield
    TransactionTestCase._fixture_teardown = original


from tests.runtime.conftest import celery_workers  # noqa: E402,F401 - a session fixture any test may need


@pytest.fixture(autouse=True)
def _diagnostic_agents(settings):
    """The tests drive guilds with ProbeAgent (a diagnostic agent, off on a real site)."""
    settings.GUILDSITE_DIAGNOSTIC_AGENTS = True


@pytest.fixture(autouse=True)
def _webhooks_to_loopback(settings):
    """Outbound webhooks reach the tests' receivers on loopback ports, retried quickly; they are sent by the test
    process's own sender, unless a test's Celery engine sends them."""
    from tests.runtime.conftest import WEBHOOK_SETTINGS

    settings.GUILDSITE_WEBHOOK_ALLOW_PRIVATE = True
    settings.GUILDSITE_WEBHOOK_RETRY_BASE_SECONDS = float(WEBHOOK_SETTINGS["GUILDSITE_WEBHOOK_RETRY_BASE_SECONDS"])
    settings.GUILDSITE_WEBHOOK_RETRY_FACTOR = float(WEBHOOK_SETTINGS["GUILDSITE_WEBHOOK_RETRY_FACTOR"])
    settings.GUILDSITE_WEBHOOK_TIMEOUT_SECONDS = float(WEBHOOK_SETTINGS["GUILDSITE_WEBHOOK_TIMEOUT_SECONDS"])
    settings.GUILDSITE_WEBHOOK_SENDER = "inprocess"
    settings.GUILDSITE_WEBHOOK_SWEEP_SECONDS = float(WEBHOOK_SETTINGS["GUILDSITE_WEBHOOK_SWEEP_SECONDS"])
