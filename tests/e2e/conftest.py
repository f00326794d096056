from __future__ import annotations

import pytest

from tests.support.live_server import LiveServer, service_env


@pytest.fixture(scope="module")
def guildsite_server():
    """Development mode (AUTH_DISABLED=1, the default with DEBUG on): the seed's clients unchanged."""
    server = LiveServer(env={"GUILDSITE_HEARTBEAT_INTERVAL": "0.5", "GUILDSITE_HEARTBEAT_TIMEOUT": "3",
                             **service_env()})
    server.migrate()
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def authenticated_server():
    """Authentication on, with the seed's user (site staff, so it may register agent classes) in the seed's
    organisation and a plain member `mallory` there."""
    server = LiveServer(env={"AUTH_DISABLED": "0", "GUILDSITE_HEARTBEAT_INTERVAL": "0.5",
                             "GUILDSITE_HEARTBEAT_TIMEOUT": "3", **service_env()})
    server.migrate()
    server.manage("create_user", "testuser123", "--staff", "--password-stdin", stdin="seed-password-123\n")
    server.manage("create_user", "mallory", "--password-stdin", stdin="mallory-password-123\n")
    server.manage("create_organization", "Test org", "--id", "testorg456", "--admin", "testuser123")
    server.manage("add_member", "testorg456", "mallory", "--role", "member")
    server.start()
    yield server
    server.stop()
