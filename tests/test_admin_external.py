"""External agents in the admin: registered through the same service as REST (the key shown once), deleted with
their keys revoked, and a guild added here seats only its own organisation's agents."""

from __future__ import annotations

import json

import pytest
from django.contrib.messages import get_messages

from guilds.external import registry
from guilds.models import ExternalAgent, Guild
from guildsite.accounts.tokens import CredentialError
from tests import factories
from tests.test_admin import admin_url

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _fast_password_hashing(settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


def _seating(registration_id: str) -> str:
    return json.dumps({"name": "S", "agents": [{"id": "helper", "name": "Helper",
                                                "class_name": "guilds.agents.external.ExternalAgent",
                                                "properties": {"registration_id": registration_id}}]})


def test_registering_in_the_admin_shows_the_key_once_and_it_admits_the_agent(admin_client, admin_user):
    organization = factories.organization("org-ext", **{admin_user.get_username(): "admin"})

    response = admin_client.post(admin_url(ExternalAgent, "add"), {"organization": organization.pk, "name": "outside"})

    assert response.status_code == 302, response.content.decode()[:2000]
    agent = ExternalAgent.objects.get(name="outside")
    shown = [str(m) for m in get_messages(response.wsgi_request) if "shown this once" in str(m)]
    key = shown[0].rsplit(" ", 1)[-1]
    assert registry.agent_for_credential(key).pk == agent.pk
    assert key in admin_client.get(response.url).content.decode()  # the page after registering shows it...
    page = admin_client.get(admin_url(ExternalAgent, "change", agent.pk)).content.decode()
    assert key not in page  # ...and no page after that
    assert "offline" in page


def test_an_admin_of_another_organisation_cannot_register_there(client):
    factories.organization("org-a", alice="admin")
    factories.organization("org-b", bob="admin")
    factories.user("alice", password="pw-alice-123", staff=True)
    client.login(username="alice", password="pw-alice-123")

    response = client.post(admin_url(ExternalAgent, "add"), {"organization": "org-b", "name": "sneaky"})

    assert response.status_code == 200  # the form again, with the error
    assert not ExternalAgent.objects.filter(name="sneaky").exists()


def test_deleting_in_the_admin_revokes_the_key(admin_client, admin_user):
    organization = factories.organization("org-ext", **{admin_user.get_username(): "admin"})
    agent, key = registry.external_agent_register(organization=organization, created_by=admin_user, name="gone")

    response = admin_client.post(admin_url(ExternalAgent, "delete", agent.pk), {"post": "yes"})

    assert response.status_code == 302
    with pytest.raises(CredentialError):
        registry.agent_for_credential(key)


def test_a_guild_added_in_the_admin_seats_only_its_organisations_agents(admin_client, admin_user):
    factories.organization("org-mine", **{admin_user.get_username(): "admin"})
    theirs = factories.organization("org-theirs", **{admin_user.get_username(): "admin"})
    agent, _ = registry.external_agent_register(organization=theirs, created_by=admin_user, name="theirs")
    form = {"name": "Seated", "description": "", "blueprint": "", "organization": "org-mine",
            "launched_by": admin_user.pk, "spec": _seating(agent.pk)}

    response = admin_client.post(admin_url(Guild, "add"), form)

    assert response.status_code == 200
    assert "not registered in organisation" in response.content.decode()
    assert not Guild.objects.filter(name="Seated").exists()
    form["organization"] = "org-theirs"
    assert admin_client.post(admin_url(Guild, "add"), form).status_code == 302
