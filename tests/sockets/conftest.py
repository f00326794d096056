from __future__ import annotations

import pytest

from guilds.models import GuildStatus
from tests.runtime.conftest import celery_workers, echo_spec, rig  # noqa: F401 - shared fixtures
from tests.support.sockets import Socket

REPORT = "rustic_ai.core.guild.agent_ext.mixins.health.AgentsHealthReport"


@pytest.fixture
def running_guild(rig):  # noqa: F811 - pytest fixture injection
    guild = rig.create(echo_spec())
    rig.wait_status(guild, GuildStatus.RUNNING)
    return guild


def syscomms(guild_id: str, user_id: str = "testuser123") -> Socket:
    return Socket(f"/ws/guilds/{guild_id}/syscomms/{user_id}")


def usercomms(guild_id: str, user_id: str = "testuser123", user_name: str = "Test%20User", query: str = "") -> Socket:
    return Socket(f"/ws/guilds/{guild_id}/usercomms/{user_id}/{user_name}{query}")
