"""External agents over REST: registration (the key once, a cap per organisation), the agent's status as its row
says, and commands with their checks: sizes, timeouts, cancelling, and the key refused anywhere but its socket."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from guilds.external import commands
from guilds.models import CommandState, ExternalAgent, ExternalStatus
from tests import factories

pytestmark = pytest.mark.django_db


@pytest.fixture
def people(settings):
    settings.AUTH_DISABLED = False
    factories.organization("org-a", boss="admin", member="member")
    factories.organization("org-b", stranger="admin")


def register(api, who: str = "boss", **body):
    return api.post("/api/external-agents", {"organization_id": "org-a", "name": "outside", **body}, format="json",
                    **factories.bearer(who))


def command(api, agent_id: str, who: str = "member", **body):
    return api.post(f"/api/external-agents/{agent_id}/commands", body, format="json", **factories.bearer(who))


def test_registering_returns_the_key_once_and_never_again(api, people):
    made = register(api).json()
    assert made["key"].startswith("gsk_")
    assert made["status"] == "offline"
    assert made["organization_id"] == "org-a"
    shown = api.get(f"/api/external-agents/{made['id']}", **factories.bearer("boss")).json()
    assert "key" not in shown
    listed = api.get("/api/external-agents", **factories.bearer("member")).json()
    assert [a["id"] for a in listed] == [made["id"]]
    assert "key" not in listed[0]
    # The key is the agent's alone: REST refuses it.
    assert api.get("/api/external-agents", HTTP_AUTHORIZATION=f"Bearer {made['key']}").status_code == 401


def test_an_organisation_has_at_most_so_many_external_agents(api, people, settings):
    settings.GUILDSITE_EXTERNAL_AGENTS_PER_ORG = 2
    assert register(api).status_code == 201
    assert register(api).status_code == 201
    refused = register(api)
    assert refused.status_code == 409
    assert refused.json()["code"] == "too_many_external_agents"


def test_a_name_is_required_and_bounded(api, people):
    assert register(api, name="").status_code == 400
    assert register(api, name="x" * 129).status_code == 400


def test_status_is_offline_once_heartbeats_are_overdue(api, people, settings):
    agent_id = register(api).json()["id"]
    ExternalAgent.objects.filter(pk=agent_id).update(status=ExternalStatus.BUSY, last_seen_at=timezone.now())
    assert api.get(f"/api/external-agents/{agent_id}", **factories.bearer("boss")).json()["status"] == "busy"
    overdue = timezone.now() - timedelta(seconds=settings.GUILDSITE_EXTERNAL_HEARTBEAT_SECONDS
                                         * settings.GUILDSITE_EXTERNAL_MISSED_HEARTBEATS + 1)
    ExternalAgent.objects.filter(pk=agent_id).update(last_seen_at=overdue)
    assert api.get(f"/api/external-agents/{agent_id}", **factories.bearer("boss")).json()["status"] == "offline"


def test_commands_are_checked_before_they_are_queued(api, people, settings):
    agent_id = register(api).json()["id"]
    assert command(api, agent_id).status_code == 400  # neither a type nor a cancel
    assert command(api, agent_id, type="run", cancel="x").status_code == 400
    assert command(api, agent_id, type="run", content="x" * (64 * 1024 + 1)).status_code == 400
    assert command(api, agent_id, type="run", parameters={"big": "y" * 70_000}).status_code == 400
    too_long = command(api, agent_id, type="run", timeout_s=settings.GUILDSITE_EXTERNAL_COMMAND_MAX_TIMEOUT_S + 1)
    assert too_long.status_code == 400
    assert command(api, agent_id, type="run", timeout_s=0).status_code == 400
    assert command(api, agent_id, cancel="not-a-command").status_code == 400
    made = command(api, agent_id, type="run", content="uname", parameters={"a": 1})
    assert made.status_code == 201
    assert made.json()["state"] == "queued"
    assert made.json()["result"] is None
    assert made.json()["created_by"] == "member"


def test_a_command_past_its_timeout_reads_expired_and_takes_no_result(api, people):
    agent_id = register(api).json()["id"]
    made = command(api, agent_id, type="run").json()
    agent = ExternalAgent.objects.get(pk=agent_id)
    agent.commands.filter(pk=made["id"]).update(expires_at=timezone.now() - timedelta(seconds=commands.RESULT_GRACE_SECONDS))
    assert api.get(f"/api/commands/{made['id']}", **factories.bearer("member")).json()["state"] == "expired"
    state = commands.command_result(agent_id, made["id"], success=True, output="late", error_message="", exit_code=0,
                                    execution_time_ms=1)
    assert state == CommandState.EXPIRED
    assert agent.commands.get(pk=made["id"]).output == ""


def test_an_agent_of_another_organisation_is_not_found(api, people):
    agent_id = register(api).json()["id"]
    made = command(api, agent_id, type="run").json()
    for path in (f"/api/external-agents/{agent_id}", f"/api/external-agents/{agent_id}/commands",
                 f"/api/commands/{made['id']}"):
        assert api.get(path, **factories.bearer("stranger")).status_code == 404
    assert api.delete(f"/api/external-agents/{agent_id}", **factories.bearer("stranger")).status_code == 404
    assert api.get("/api/external-agents", **factories.bearer("stranger")).json() == []
