"""The data migration that turns the free-text owner ids stored before accounts existed into rows.

The database is taken back to the schema before the owner migrations (catalog 0001, guilds 0002,
with the accounts tables there), legacy rows are written with the historical models, and the
migrations are run forward to the latest state.
"""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

from catalog.models import Blueprint
from guilds.models import Guild, GuildMember
from guildsite.accounts.models import Membership, Organization

BEFORE_OWNERS = [("accounts", "0001_initial"), ("catalog", "0001_initial"), ("guilds", "0002_guildfile")]

SPEC = {"name": "EchoTestBlueprint", "agents": [{"name": "EchoAgent",
                                                  "class_name": "rustic_ai.core.agents.testutils.echo_agent.EchoAgent"}]}


def _migrate(targets=None):
    """Migrate to `targets` (default: the latest state of every app); the apps of that state."""
    executor = MigrationExecutor(connection)
    targets = targets or executor.loader.graph.leaf_nodes()
    executor.migrate(targets)
    executor.loader.build_graph()
    return executor.loader.project_state(targets).apps


@pytest.fixture
def legacy_apps(transactional_db):
    """The historical apps before the owner migrations; the database is back at the latest state
    afterwards, whatever the test did."""
    try:
        yield _migrate(BEFORE_OWNERS)
    finally:
        _migrate()


@pytest.fixture
def legacy_rows(legacy_apps) -> dict[str, str]:
    """The rows the seed's flow left before accounts existed."""
    blueprints = legacy_apps.get_model("catalog", "Blueprint")
    guilds = legacy_apps.get_model("guilds", "Guild")
    agents = legacy_apps.get_model("guilds", "GuildAgent")

    blueprint = blueprints.objects.create(name="EchoTestBlueprint", author_id="test_author",
                                          organization_id="testorg456", exposure="private", spec=SPEC)
    seed = guilds.objects.create(name="EchoTestGuild", user_id="testuser123", organization_id="testorg456",
                                 spec=SPEC, blueprint=blueprint)
    weird = guilds.objects.create(name="WeirdGuild", user_id="testuser123", organization_id="Weird Org!", spec=SPEC)
    orphan = guilds.objects.create(name="NoOrgGuild", user_id="testuser123", organization_id="", spec=SPEC)
    agents.objects.create(guild=seed, agent_id="upa-joiner", name="joiner", kind="human",
                          class_name="guilds.agents.user_proxy.UserProxyAgent",
                          spec={"properties": {"user_id": "joiner"}})
    agents.objects.create(guild=weird, agent_id="upa-odd", name="odd", kind="human",
                          class_name="guilds.agents.user_proxy.UserProxyAgent",
                          spec={"properties": {"user_id": "odd name:1"}})
    agents.objects.create(guild=seed, agent_id="echo", name="EchoAgent", kind="bot",
                          class_name="rustic_ai.core.agents.testutils.echo_agent.EchoAgent",
                          spec={"properties": {"user_id": "not-a-person"}})
    return {"blueprint": blueprint.pk, "seed": seed.pk, "weird": weird.pk, "orphan": orphan.pk}


def _members_of(guild_id: str) -> set[str]:
    return set(GuildMember.objects.filter(guild_id=guild_id).values_list("user__username", flat=True))


def _roles(organization_id: str) -> dict[str, str]:
    return dict(Membership.objects.filter(organization_id=organization_id).values_list("user__username", "role"))


@pytest.mark.django_db(transaction=True)
def test_legacy_owner_ids_become_users_organisations_memberships_and_guild_members(legacy_rows):
    _migrate()

    users = {u.username: u for u in get_user_model().objects.all()}
    assert set(users) == {"test_author", "testuser123", "joiner", "odd_name_1"}
    assert not any(u.has_usable_password() for u in users.values())  # no one signs in with a guessed password

    assert {o.pk: o.name for o in Organization.objects.all()} == {"testorg456": "testorg456", "weird-org": "Weird Org!"}
    # Anyone could join any guild before accounts: those who only joined just watch (viewer).
    assert _roles("testorg456") == {"test_author": "admin", "testuser123": "member", "joiner": "viewer"}
    assert _roles("weird-org") == {"testuser123": "admin", "odd_name_1": "viewer"}

    blueprint = Blueprint.objects.get(pk=legacy_rows["blueprint"])
    assert (blueprint.author.username, blueprint.organization_id) == ("test_author", "testorg456")

    seed = Guild.objects.get(pk=legacy_rows["seed"])
    assert (seed.launched_by.username, seed.organization_id, seed.blueprint_id) == (
        "testuser123", "testorg456", legacy_rows["blueprint"])
    weird = Guild.objects.get(pk=legacy_rows["weird"])
    assert (weird.launched_by.username, weird.organization_id) == ("testuser123", "weird-org")
    orphan = Guild.objects.get(pk=legacy_rows["orphan"])
    assert (orphan.launched_by.username, orphan.organization_id) == ("testuser123", None)

    assert _members_of(legacy_rows["seed"]) == {"testuser123", "joiner"}
    assert _members_of(legacy_rows["weird"]) == {"testuser123", "odd_name_1"}
    assert _members_of(legacy_rows["orphan"]) == {"testuser123"}


@pytest.mark.django_db(transaction=True)
def test_the_owners_migration_can_be_reversed(legacy_rows):
    _migrate()

    legacy_apps = _migrate(BEFORE_OWNERS)

    blueprint = legacy_apps.get_model("catalog", "Blueprint").objects.get(pk=legacy_rows["blueprint"])
    assert (blueprint.author_id, blueprint.organization_id) == ("test_author", "testorg456")
    guilds = legacy_apps.get_model("guilds", "Guild").objects
    assert (guilds.get(pk=legacy_rows["seed"]).user_id, guilds.get(pk=legacy_rows["seed"]).organization_id) == (
        "testuser123", "testorg456")
    assert guilds.get(pk=legacy_rows["weird"]).organization_id == "weird-org"
    assert guilds.get(pk=legacy_rows["orphan"]).organization_id == ""


@pytest.mark.django_db(transaction=True)
def test_different_legacy_ids_that_clean_to_one_name_stay_apart(legacy_apps):
    blueprints = legacy_apps.get_model("catalog", "Blueprint")
    guilds = legacy_apps.get_model("guilds", "Guild")
    # "a b" cleans to "a_b", which is also a valid id of its own; "Weird Org!" slugs to "weird-org", also valid.
    mine = guilds.objects.create(name="Mine", user_id="a b", organization_id="Weird Org!", spec=SPEC)
    theirs = guilds.objects.create(name="Theirs", user_id="a_b", organization_id="weird-org", spec=SPEC)
    draft = blueprints.objects.create(name="Draft", author_id="a b", organization_id="Weird Org!", spec=SPEC)

    _migrate()

    mine, theirs = Guild.objects.get(pk=mine.pk), Guild.objects.get(pk=theirs.pk)
    assert (theirs.launched_by.username, theirs.organization_id) == ("a_b", "weird-org")
    assert (mine.launched_by.username, mine.organization_id) == ("a_b-2", "weird-org-2")
    assert Organization.objects.get(pk="weird-org-2").name == "Weird Org!"
    # One legacy id is one row in blueprints and guilds alike.
    draft = Blueprint.objects.get(pk=draft.pk)
    assert (draft.author.username, draft.organization_id) == ("a_b-2", "weird-org-2")
    assert _roles("weird-org") == {"a_b": "admin"}
    assert _roles("weird-org-2") == {"a_b-2": "admin"}


@pytest.mark.django_db(transaction=True)
def test_ids_that_differ_only_in_spaces_stay_apart(legacy_apps):
    guilds = legacy_apps.get_model("guilds", "Guild")
    plain = guilds.objects.create(name="Plain", user_id="bob", organization_id="acme", spec=SPEC)
    spaced = guilds.objects.create(name="Spaced", user_id="bob ", organization_id="acme ", spec=SPEC)

    _migrate()

    plain, spaced = Guild.objects.get(pk=plain.pk), Guild.objects.get(pk=spaced.pk)
    assert (plain.launched_by.username, plain.organization_id) == ("bob", "acme")
    assert (spaced.launched_by.username, spaced.organization_id) == ("bob-2", "acme-2")
