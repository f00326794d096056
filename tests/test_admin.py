"""The Django admin: every page renders for a superuser, and specs are checked like the API checks them."""

from __future__ import annotations

import json

import pytest
from django.contrib import admin
from django.urls import reverse

from catalog.models import AgentEntry, Blueprint, Category
from guilds.models import Guild, GuildAgent, GuildStatus, Run, Thread, ThreadMessage
from tests import factories

pytestmark = pytest.mark.django_db

ECHO = "rustic_ai.core.agents.testutils.echo_agent.EchoAgent"
SPEC = {"name": "EchoTestBlueprint", "agents": [{"name": "EchoAgent", "class_name": ECHO,
                                                  "additional_topics": ["echo_topic"]}]}


@pytest.fixture(autouse=True)
def _fast_password_hashing(settings):
    # admin_client makes a superuser per test; the real hasher would dominate the run time.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


def admin_url(model, view: str, *args) -> str:
    return reverse(f"admin:{model._meta.app_label}_{model._meta.model_name}_{view}", args=args)


@pytest.fixture
def objects() -> dict:
    category = Category.objects.create(name="Testing")
    blueprint = factories.blueprint(author="a", org="org1", spec=SPEC)
    blueprint.category = category
    blueprint.save()
    guild = Guild.objects.create(name="G", spec=SPEC, blueprint=blueprint, organization=factories.organization("org1"),
                                 status=GuildStatus.RUNNING)
    agent = GuildAgent.objects.create(guild=guild, agent_id="echo1", name="EchoAgent", class_name=ECHO, spec={})
    entry = AgentEntry.objects.create(qualified_class_name=ECHO)
    thread = Thread.objects.create(guild=guild, agent_id="llm1", requester="user1", title="Hello")
    ThreadMessage.objects.create(thread=thread, role="user", content="Hello", bus_message_id=1)
    run = Run.objects.create(guild=guild, agent_id="llm1", thread=thread, status="succeeded", model="gpt-4o-mini",
                             input_tokens=12, output_tokens=5, message_id=1)
    return {AgentEntry: entry, Category: category, Blueprint: blueprint, Guild: guild, GuildAgent: agent,
            Thread: thread, Run: run}


def blueprint_form(spec, **fields) -> dict:
    return {"name": "B", "description": "", "version": "v1", "author": factories.user("me").pk,
            "organization": factories.organization("org1").pk, "exposure": "private", "category": "",
            "spec": json.dumps(spec), "tags": "[]", "intro_msg": "", "icon": "", **fields}


@pytest.mark.parametrize("model", list(admin.site._registry), ids=lambda m: m._meta.label)
def test_every_changelist_renders(admin_client, objects, model):
    assert admin_client.get(admin_url(model, "changelist")).status_code == 200


@pytest.mark.parametrize("model", list(admin.site._registry), ids=lambda m: m._meta.label)
def test_every_add_page_renders_or_is_refused_by_design(admin_client, admin_user, rf, model):
    request = rf.get("/")
    request.user = admin_user
    addable = admin.site._registry[model].has_add_permission(request)

    assert admin_client.get(admin_url(model, "add")).status_code == (200 if addable else 403)


def test_guild_agents_are_view_only(admin_client):
    # The runtime creates and retires a guild's agents.
    assert admin_client.get(admin_url(GuildAgent, "add")).status_code == 403


@pytest.mark.parametrize("model", [AgentEntry, Category, Blueprint, Guild, GuildAgent, Thread, Run],
                         ids=lambda m: m.__name__)
def test_change_pages_render(admin_client, objects, model):
    response = admin_client.get(admin_url(model, "change", objects[model].pk))

    assert response.status_code == 200


def test_guild_page_shows_status_read_only_and_its_agents(admin_client, objects):
    guild = objects[Guild]

    page = admin_client.get(admin_url(Guild, "change", guild.pk)).content.decode()

    assert 'name="status"' not in page
    assert "Running" in page
    assert "echo1" in page


def test_guild_list_filters_and_search(admin_client, objects):
    url = admin_url(Guild, "changelist")

    assert "G" in admin_client.get(url, {"status__exact": "RUNNING"}).content.decode()
    assert admin_client.get(url, {"organization__id__exact": "org1"}).status_code == 200
    assert admin_client.get(url, {"q": "G"}).context["cl"].result_count == 1
    # A public id is letters and digits only, so no guild's id can contain this.
    assert admin_client.get(url, {"q": "no-such-guild"}).context["cl"].result_count == 0


def test_guild_list_shows_and_filters_suspended_guilds(admin_client, objects):
    url = admin_url(Guild, "changelist")
    Guild.objects.filter(name="G").update(suspended=True)

    page = admin_client.get(url)
    assert "column-suspended" in page.content.decode()
    assert admin_client.get(url, {"suspended__exact": "1"}).context["cl"].result_count == 1
    assert admin_client.get(url, {"suspended__exact": "0"}).context["cl"].result_count == 0


def test_an_invalid_spec_is_refused_with_the_message_shown(admin_client):
    response = admin_client.post(admin_url(Blueprint, "add"), blueprint_form({"name": "B", "agents": [{}]}))

    assert response.status_code == 200
    page = response.content.decode()
    assert "spec.agents.0.name: Field required" in page
    assert not Blueprint.objects.exists()


def test_an_unknown_agent_class_in_the_spec_is_refused(admin_client):
    spec = {"name": "B", "agents": [{"name": "X", "class_name": "os.system"}]}

    response = admin_client.post(admin_url(Blueprint, "add"), blueprint_form(spec))

    assert response.status_code == 200
    assert "os.system" in response.content.decode()
    assert not Blueprint.objects.exists()


def test_json_that_does_not_parse_is_refused(admin_client):
    form = blueprint_form({})
    form["spec"] = "{not json"

    response = admin_client.post(admin_url(Blueprint, "add"), form)

    assert response.status_code == 200
    assert "Enter a valid JSON" in response.content.decode()


def test_a_valid_spec_is_stored_as_typed(admin_client):
    response = admin_client.post(admin_url(Blueprint, "add"), blueprint_form(SPEC, tags=""))

    assert response.status_code == 302
    blueprint = Blueprint.objects.get()
    assert blueprint.spec == SPEC
    assert blueprint.tags == []


def test_an_agent_entry_must_name_an_agent_class(admin_client):
    form = {"qualified_class_name": "os.system", "agent_name": "", "description": "", "properties_schema": "{}",
            "dependencies": "[]", "message_handlers": "{}"}

    response = admin_client.post(admin_url(AgentEntry, "add"), form)

    assert response.status_code == 200
    assert "not an agent class" in response.content.decode()
    assert not AgentEntry.objects.exists()


def test_an_agent_entry_with_cleared_json_fields_is_stored_empty(admin_client):
    form = {"qualified_class_name": ECHO, "agent_name": "", "description": "", "properties_schema": "",
            "dependencies": "", "message_handlers": ""}

    response = admin_client.post(admin_url(AgentEntry, "add"), form)

    assert response.status_code == 302
    entry = AgentEntry.objects.get()
    assert (entry.properties_schema, entry.dependencies, entry.message_handlers) == ({}, [], {})


def test_a_duplicate_category_name_is_refused(admin_client):
    Category.objects.create(name="Testing")

    response = admin_client.post(admin_url(Category, "add"), {"name": "testing", "description": ""})

    assert response.status_code == 200
    assert "already exists" in response.content.decode()


def test_adding_a_guild_from_a_blueprint_goes_through_the_service(admin_client, objects):
    blueprint = objects[Blueprint]
    form = {"name": "FromAdmin", "description": "", "blueprint": blueprint.pk,
            "organization": factories.organization("org9", u9="member").pk, "launched_by": factories.user("u9").pk,
            "spec": ""}

    response = admin_client.post(admin_url(Guild, "add"), form)

    assert response.status_code == 302, response.content.decode()[:2000]
    guild = Guild.objects.get(name="FromAdmin")
    assert guild.status == GuildStatus.REQUESTED
    assert guild.spec["name"] == "FromAdmin"
    assert guild.spec["agents"][0]["name"] == "EchoAgent"
    assert guild.blueprint_id == blueprint.pk


def test_adding_a_guild_needs_a_spec_or_a_blueprint(admin_client):
    form = {"name": "X", "description": "", "blueprint": "", "organization": factories.organization("org9").pk,
            "launched_by": "", "spec": ""}

    response = admin_client.post(admin_url(Guild, "add"), form)

    assert response.status_code == 200
    assert "choose a blueprint" in response.content.decode()
    assert not Guild.objects.exists()


def test_a_typed_spec_holding_a_mask_is_refused_as_the_api_refuses_it(admin_client):
    """A spec copied from a page or an API answer holds "***" where its secrets were; a new guild has none stored,
    so the mask would become the agent's key."""
    spec = {"name": "Masked", "agents": [{"name": "EchoAgent", "class_name": ECHO,
                                          "dependency_map": {"llm": {"properties": {"api_key": "***"}}}}]}
    form = {"name": "Masked", "description": "", "blueprint": "", "organization": factories.organization("org9").pk,
            "launched_by": "", "spec": json.dumps(spec)}

    response = admin_client.post(admin_url(Guild, "add"), form)

    assert response.status_code == 200
    assert "stands for a stored secret" in response.content.decode()
    assert not Guild.objects.exists()


@pytest.mark.django_db(transaction=True)
def test_admin_actions_stop_and_relaunch_guilds_through_the_runtime(admin_client, request):
    from django.conf import settings

    from guilds.models import Guild, GuildStatus
    from guilds.services import guild_create
    from guilds.spec import validate_guild_spec
    from tests.runtime.conftest import echo_spec, wait_for

    if settings.GUILDSITE_EXECUTION_ENGINE == "celery":
        request.getfixturevalue("celery_workers")  # the site's engine runs agents in workers
    guild = guild_create(spec=validate_guild_spec(echo_spec()), name="Admin guild", launched_by=factories.user("u1"),
                         organization=factories.organization("org1"))
    wait_for(lambda: Guild.objects.get(pk=guild.pk).status == GuildStatus.RUNNING, what="RUNNING")
    response = admin_client.post("/admin/guilds/guild/", {"action": "relaunch_guilds", "_selected_action": [guild.pk]},
                                 follow=True)
    assert "already running here" in response.content.decode()
    response = admin_client.post("/admin/guilds/guild/", {"action": "stop_guilds", "_selected_action": [guild.pk]},
                                 follow=True)
    assert "Admin guild: stopped." in response.content.decode()
    assert Guild.objects.get(pk=guild.pk).status == GuildStatus.STOPPED
    response = admin_client.post("/admin/guilds/guild/", {"action": "relaunch_guilds", "_selected_action": [guild.pk]},
                                 follow=True)
    assert "is stopped" in response.content.decode()


def test_threads_and_runs_are_read_only(admin_client, objects):
    page = admin_client.get(admin_url(Thread, "change", objects[Thread].pk)).content.decode()
    assert "Hello" in page
    for model in (Thread, Run):
        assert admin_client.get(admin_url(model, "add")).status_code == 403
        assert admin_client.post(admin_url(model, "change", objects[model].pk), {"title": "x"}).status_code == 403


def test_a_guild_in_the_admin_links_to_its_dashboard_page(admin_client, objects):
    page = admin_client.get(admin_url(Guild, "change", objects[Guild].pk)).content.decode()
    assert f'href="/dashboard/guilds/{objects[Guild].pk}/"' in page
