"""A spec's secrets never leave the server: no API answer, admin page or log line holds them.

Two blueprints and two guilds (stored, never run: no Redis has these passwords) carry a Redis
`redis_client` password and username, a Redis `url` with a password, an agent's `api_key` and a
guild-level `webhook_secret`. What a client reads shows `"***"`; what it sends back as `"***"` keeps
the stored value; `"***"` where nothing is stored is refused.
"""

from __future__ import annotations

import copy
import json
import logging

import pytest
from django.test import Client
from django.urls import reverse

from catalog.models import Blueprint, Exposure
from guilds.models import Guild, GuildAgent, GuildStatus
from tests import factories

pytestmark = pytest.mark.django_db

REDIS_PASSWORD = "hunter2-redis-password-5d1f"
REDIS_USERNAME = "redis-user-c0ffee"
URL_PASSWORD = "hunter3-url-password-9b7e"
AGENT_KEY = "sk-agent-key-4e2a9c"
GUILD_SECRET = "webhook-secret-77aa01"
SECRETS = (REDIS_PASSWORD, REDIS_USERNAME, URL_PASSWORD, AGENT_KEY)  # the list; GUILD_SECRET: see its test
ORG = "org-s"


def spec_with(backend_config: dict, agent_class: str, **agent_properties) -> dict:
    return {
        "name": "Keyed",
        "description": "a guild with credentials",
        "agents": [{"name": "Keyed", "class_name": agent_class, "properties": agent_properties}],
        "properties": {
            "messaging": {"backend_module": "rustic_ai.redis.messaging.backend", "backend_class": "RedisMessagingBackend",
                          "backend_config": backend_config},
            "webhook_secret": GUILD_SECRET,
        },
    }


def client_spec(agent_class: str) -> dict:
    config = {"redis_client": {"host": "localhost", "port": 6379, "username": REDIS_USERNAME, "password": REDIS_PASSWORD}}
    return spec_with(config, agent_class, api_key=AGENT_KEY, max_tokens=512)


def url_spec(agent_class: str) -> dict:
    return spec_with({"url": f"redis://:{URL_PASSWORD}@localhost:6379/0"}, agent_class, api_key=AGENT_KEY)


@pytest.fixture
def stored(keyed_agents) -> dict:
    """The blueprints and guilds holding the secrets, their author `owner` (member of org-s), a superuser."""
    factories.organization(ORG, owner="member")
    made = {
        "client": factories.blueprint(author="owner", org=ORG, exposure=Exposure.ORGANIZATION,
                                      spec=client_spec(keyed_agents), name="client"),
        "url": factories.blueprint(author="owner", org=ORG, exposure=Exposure.ORGANIZATION,
                                   spec=url_spec(keyed_agents), name="url"),
        "client guild": factories.guild("client-guild", org=ORG, user="owner", status=GuildStatus.RUNNING,
                                        spec=client_spec(keyed_agents)),
        "url guild": factories.guild("url-guild", org=ORG, user="owner", status=GuildStatus.RUNNING,
                                     spec=url_spec(keyed_agents)),
    }
    guild = made["client guild"]
    agent = guild.spec["agents"][0]
    # As the runtime records an agent it starts: its spec, properties included.
    made["agent"] = GuildAgent.objects.create(guild=guild, agent_id=agent["id"], name=agent["name"],
                                              class_name=agent["class_name"], spec=agent)
    return made


@pytest.fixture(params=["auth-on", "development"])
def owner_headers(request, settings) -> dict[str, str]:
    settings.AUTH_DISABLED = request.param == "development"
    return {"HTTP_X_USER_ID": "owner"} if request.param == "development" else factories.bearer("owner")


def leaked(content: bytes | str) -> list[str]:
    text = content.decode() if isinstance(content, bytes) else content
    return [secret for secret in SECRETS if secret in text]


def test_no_api_answer_holds_a_secret(api, stored, owner_headers):
    client_bp, url_bp = stored["client"], stored["url"]
    answers = {
        "blueprint list": api.get("/catalog/blueprints/", **owner_headers),
        "blueprint detail (client)": api.get(f"/catalog/blueprints/{client_bp.id}", **owner_headers),
        "blueprint detail (url)": api.get(f"/catalog/blueprints/{url_bp.id}", **owner_headers),
        "guild list": api.get("/api/guilds", **owner_headers),
        "guild detail (client)": api.get(f"/api/guilds/{stored['client guild'].id}", **owner_headers),
        "guild detail (url)": api.get(f"/api/guilds/{stored['url guild'].id}", **owner_headers),
        "launch": api.post(f"/catalog/blueprints/{client_bp.id}/guilds",
                           {"guild_name": "launched", "user_id": "owner", "org_id": ORG}, **owner_headers),
        "update (PATCH)": api.patch(f"/catalog/blueprints/{client_bp.id}", {"description": "patched"}, **owner_headers),
    }
    detail = answers["blueprint detail (url)"].json()
    put = {key: detail[key] for key in ("name", "description", "version", "organization_id", "exposure", "spec",
                                         "tags", "intro_msg", "icon")}
    answers["update (PUT)"] = api.put(f"/catalog/blueprints/{url_bp.id}", put, **owner_headers)
    launched = Guild.objects.get(pk=answers["launch"].json()["id"])
    answers["launched guild detail"] = api.get(f"/api/guilds/{launched.id}", **owner_headers)

    for what, response in answers.items():
        assert response.status_code in (200, 201), (what, response.content)
        assert response["Content-Type"].startswith("application/json"), what
        assert leaked(response.content) == [], what
    # What the reader sees instead: the places are kept, the values masked; counts are not secrets.
    spec = answers["blueprint detail (client)"].json()["spec"]
    assert spec["properties"]["messaging"]["backend_config"]["redis_client"] == {
        "host": "localhost", "port": 6379, "username": "***", "password": "***"}
    assert spec["agents"][0]["properties"] == {"api_key": "***", "max_tokens": 512}
    url = answers["guild detail (url)"].json()["spec"]["properties"]["messaging"]["backend_config"]["url"]
    assert url == "redis://***:***@localhost:6379/0"
    # The guild launched runs with the real credentials.
    assert launched.spec["properties"]["messaging"]["backend_config"]["redis_client"]["password"] == REDIS_PASSWORD
    assert launched.spec["agents"][0]["properties"]["api_key"] == AGENT_KEY


def test_a_spec_sent_back_with_masks_keeps_the_stored_secrets(api, stored, owner_headers):
    for name in ("client", "url"):
        blueprint = stored[name]
        spec = api.get(f"/catalog/blueprints/{blueprint.id}", **owner_headers).json()["spec"]
        spec["description"] = "edited by a client that read it masked"
        response = api.patch(f"/catalog/blueprints/{blueprint.id}", {"spec": spec}, **owner_headers)

        assert response.status_code == 200, response.content
        assert leaked(response.content) == []
        blueprint.refresh_from_db()
        assert blueprint.spec["description"] == "edited by a client that read it masked"
        assert blueprint.spec["agents"][0]["properties"]["api_key"] == AGENT_KEY
    client_config = stored["client"].spec["properties"]["messaging"]["backend_config"]
    assert client_config["redis_client"]["password"] == REDIS_PASSWORD
    assert client_config["redis_client"]["username"] == REDIS_USERNAME
    url_config = stored["url"].spec["properties"]["messaging"]["backend_config"]
    assert url_config["url"] == f"redis://:{URL_PASSWORD}@localhost:6379/0"


def test_a_put_with_masks_keeps_the_stored_secrets(api, stored, owner_headers):
    blueprint = stored["client"]
    detail = api.get(f"/catalog/blueprints/{blueprint.id}", **owner_headers).json()
    body = {key: detail[key] for key in ("name", "version", "organization_id", "exposure", "spec", "tags")}
    body["description"] = "replaced"

    response = api.put(f"/catalog/blueprints/{blueprint.id}", body, **owner_headers)

    assert response.status_code == 200, response.content
    blueprint.refresh_from_db()
    assert blueprint.description == "replaced"
    assert blueprint.spec == client_spec(blueprint.spec["agents"][0]["class_name"])


def test_a_secret_named_guild_property_is_masked_too(api, superuser, stored, owner_headers):
    """guildsite.redaction says the guild's own properties are covered like agent properties."""
    blueprint, guild = stored["client"], stored["client guild"]
    answers = {
        "blueprint detail": api.get(f"/catalog/blueprints/{blueprint.id}", **owner_headers),
        "guild detail": api.get(f"/api/guilds/{guild.id}", **owner_headers),
        "admin blueprint page": superuser.get(admin_url(Blueprint, "change", blueprint.pk)),
        "admin guild page": superuser.get(admin_url(Guild, "change", guild.pk)),
    }
    for what, response in answers.items():
        assert response.status_code == 200, what
        assert GUILD_SECRET not in response.content.decode(), what
    assert answers["blueprint detail"].json()["spec"]["properties"]["webhook_secret"] == "***"


def _without_secrets(agent_class: str) -> dict:
    spec = spec_with({"redis_client": {"host": "localhost", "port": 6379}}, agent_class)
    del spec["properties"]["webhook_secret"]
    return spec


@pytest.mark.parametrize("where", ["agent api_key", "redis password"])
def test_a_mask_where_no_secret_is_stored_is_refused(api, problem, keyed_agents, settings, where):
    settings.AUTH_DISABLED = False
    factories.organization(ORG, owner="member")
    blueprint = factories.blueprint(author="owner", org=ORG, spec=_without_secrets(keyed_agents), name="plain")
    spec = copy.deepcopy(blueprint.spec)
    if where == "agent api_key":
        spec["agents"][0]["properties"]["api_key"] = "***"
    else:
        spec["properties"]["messaging"]["backend_config"]["redis_client"]["password"] = "***"

    response = api.patch(f"/catalog/blueprints/{blueprint.id}", {"spec": spec}, **factories.bearer("owner"))

    body = problem(response, 400, "invalid")
    assert "***" in body["detail"]
    blueprint.refresh_from_db()
    assert blueprint.spec == _without_secrets(keyed_agents)


def test_a_new_blueprint_whose_secret_is_a_mask_is_refused(api, problem, keyed_agents, settings):
    """Nothing is stored yet, so "***" cannot stand for a stored secret (and must not become the password)."""
    settings.AUTH_DISABLED = False
    factories.organization(ORG, owner="member")
    spec = _without_secrets(keyed_agents)
    spec["properties"]["messaging"]["backend_config"]["redis_client"]["password"] = "***"

    response = api.post("/catalog/blueprints/", {"name": "masked", "organization_id": ORG, "spec": spec},
                        **factories.bearer("owner"))

    problem(response, 400, "invalid")
    assert not Blueprint.objects.filter(name="masked").exists()


def test_no_log_line_holds_a_secret(api, caplog, keyed_agents, settings):
    settings.AUTH_DISABLED = False
    factories.organization(ORG, owner="member")
    headers = factories.bearer("owner")
    caplog.set_level(logging.DEBUG)

    created = api.post("/catalog/blueprints/", {"name": "logged", "organization_id": ORG,
                                                "spec": client_spec(keyed_agents)}, **headers)
    assert created.status_code == 201, created.content
    blueprint_id = created.json()["id"]
    new_spec = url_spec(keyed_agents)
    updated = api.patch(f"/catalog/blueprints/{blueprint_id}", {"spec": new_spec}, **headers)
    assert updated.status_code == 200, updated.content
    launched = api.post(f"/catalog/blueprints/{blueprint_id}/guilds",
                        {"guild_name": "logged", "user_id": "owner", "org_id": ORG}, **headers)
    assert launched.status_code == 201, launched.content
    refused = api.patch(f"/catalog/blueprints/{blueprint_id}", {"spec": {**new_spec, "agents": [{}]}}, **headers)
    assert refused.status_code == 400

    assert caplog.records, "nothing was logged: the check would prove nothing"
    for record in caplog.records:
        assert leaked(record.getMessage()) == [], record.getMessage()
        assert leaked(repr(vars(record))) == [], vars(record)  # structured context (extra=) included


# --- the admin, as a superuser --------------------------------------------------------------


def admin_url(model, view: str, *args) -> str:
    return reverse(f"admin:{model._meta.app_label}_{model._meta.model_name}_{view}", args=args)


@pytest.fixture
def superuser() -> Client:
    client = Client()
    client.force_login(factories.user("root", superuser=True))
    return client


ADMIN_PAGES = {
    "blueprint-changelist": (Blueprint, "changelist", None),
    "blueprint-change-client": (Blueprint, "change", "client"),
    "blueprint-change-url": (Blueprint, "change", "url"),
    "guild-changelist": (Guild, "changelist", None),
    "guild-change-client": (Guild, "change", "client guild"),
    "guild-change-url": (Guild, "change", "url guild"),
    "guildagent-changelist": (GuildAgent, "changelist", None),
    "guildagent-change": (GuildAgent, "change", "agent"),  # the agent's spec, properties included
}


@pytest.mark.parametrize("page", ADMIN_PAGES)
def test_no_admin_page_holds_a_secret(superuser, stored, page):
    model, view, row = ADMIN_PAGES[page]
    response = superuser.get(admin_url(model, view, *([stored[row].pk] if row else [])))

    assert response.status_code == 200
    assert leaked(response.content) == []
    if model is Blueprint and row:
        assert "***" in response.content.decode()  # the spec is there, masked


def test_the_admin_form_sent_back_with_masks_keeps_the_stored_secrets(superuser, stored):
    blueprint = stored["client"]
    form = superuser.get(admin_url(Blueprint, "change", blueprint.pk)).context["adminform"].form
    spec = json.loads(form["spec"].value()) if isinstance(form["spec"].value(), str) else form["spec"].value()
    assert leaked(json.dumps(spec)) == []
    spec["description"] = "edited in the admin"
    data = {"name": blueprint.name, "description": "", "version": "", "category": "", "exposure": blueprint.exposure,
            "author": blueprint.author_id, "organization": blueprint.organization_id, "shared_with": [],
            "spec": json.dumps(spec), "tags": "[]", "intro_msg": "", "icon": ""}

    response = superuser.post(admin_url(Blueprint, "change", blueprint.pk), data)

    assert response.status_code == 302, response.content.decode()[:3000]
    blueprint.refresh_from_db()
    assert blueprint.spec == {**client_spec(blueprint.spec["agents"][0]["class_name"]),
                              "description": "edited in the admin"}


RESOLVER_KEY = "sk-resolver-key-31c7d2"
AGENT_RESOLVER_KEY = "sk-agent-resolver-key-8a0e"
CONFIGURED_TOKEN = "configured-token-5fe19b"


def test_dependency_maps_and_a_blueprints_configuration_are_masked_and_kept(api, keyed_agents, settings):
    """A resolver's credentials (Rustic AI's dependency_map: a class and its properties) and a blueprint's configured
    values are as secret as properties: read as masks, kept when the masks come back."""
    settings.AUTH_DISABLED = False
    factories.organization(ORG, owner="member")
    spec = _without_secrets(keyed_agents)
    spec["dependency_map"] = {"llm": {"class_name": "rustic_ai.litellm.agent_ext.llm.LiteLLMResolver",
                                      "properties": {"model": "gpt-4o", "api_key": RESOLVER_KEY}}}
    spec["agents"][0]["dependency_map"] = {"search": {"class_name": "x.SearchResolver",
                                                      "properties": {"access_token": AGENT_RESOLVER_KEY}}}
    spec["configuration"] = {"service_token": CONFIGURED_TOKEN, "region": "eu"}
    blueprint = factories.blueprint(author="owner", org=ORG, exposure=Exposure.ORGANIZATION, spec=spec, name="resolved")
    headers = factories.bearer("owner")

    answer = api.get(f"/catalog/blueprints/{blueprint.id}", **headers)
    text = answer.content.decode()
    assert [key for key in (RESOLVER_KEY, AGENT_RESOLVER_KEY, CONFIGURED_TOKEN) if key in text] == []
    read = answer.json()["spec"]
    assert read["dependency_map"]["llm"]["properties"] == {"model": "gpt-4o", "api_key": "***"}
    assert read["agents"][0]["dependency_map"]["search"]["properties"] == {"access_token": "***"}
    assert read["configuration"] == {"service_token": "***", "region": "eu"}

    read["description"] = "edited with the masks in place"
    assert api.patch(f"/catalog/blueprints/{blueprint.id}", {"spec": read}, **headers).status_code == 200
    blueprint.refresh_from_db()
    assert blueprint.spec["description"] == "edited with the masks in place"
    assert blueprint.spec["dependency_map"]["llm"]["properties"]["api_key"] == RESOLVER_KEY
    assert blueprint.spec["agents"][0]["dependency_map"]["search"]["properties"]["access_token"] == AGENT_RESOLVER_KEY
    assert blueprint.spec["configuration"]["service_token"] == CONFIGURED_TOKEN
