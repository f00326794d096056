from __future__ import annotations

import pytest

from tests.support.live_server import LiveServer, service_env


@pytest.fixture(scope="module")
def guildsite_server():
    server = LiveServer(env={"GUILDSITE_HEARTBEAT_INTERVAL": "0.5", "GUILDSITE_HEARTBEAT_TIMEOUT": "3",
                             **service_env()})
    server.migrate()
    server.start()
    yield server
    server.stop()
