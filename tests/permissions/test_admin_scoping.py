"""The Django admin, scoped: a staff user who is not a superuser sees and acts on only the rows of
organisations where they are admin. Superusers see everything.

`a-staff` is staff and admin of org A ("Alpha Org") only; every org B row is named "Bravo ...".
"""

from __future__ import annotations

import re

import pytest
from django.test import Client
from django.urls import reverse

from catalog.models import Blueprint, Category, Exposure
from guilds.models import Guild, GuildAgent, GuildStatus
from guildsite.accounts.models import ApiKey, Membership, Organization
from tests import factories

pytestmark = pytest.mark.django_db

ECHO = factories.ECHO


def admin_url(model, view: str, *args) -> str:
    return reverse(f"admin:{model._meta.app_label}_{model._meta.model_name}_{view}", args=args)


def rows_of_two_organisations() -> dict:
    """An A row and a B row of every organisation-owned model, with names that say whose."""
    made: dict = {}
    for org_id, name, people in (("org-a", "Alpha", {"alpha-user": "member"}),
                                 ("org-b", "Bravo", {"bravo-user": "member"})):
        organization = factories.organization(org_id, **people)
        Organization.objects.filter(pk=org_id).update(name=f"{name} Org")
        user = next(iter(people))
        guild = factories.guild(f"{name} guild", org=org_id, user=user, status=GuildStatus.RUNNING,
                                execution_engine="inprocess")
        key, _ = factories.api_key(org_id, user)
        ApiKey.objects.filter(pk=key.pk).update(name=f"{name} key")
        made[name] = {
            Organization: organization,
            Membership: Membership.objects.get(user__username=user, organization=organization),
            ApiKey: key,
            Category: Category.objects.create(name=f"{name} category", organization=organization),
            Blueprint: factories.blueprint(author=user, org=org_id, exposure=Exposure.PRIVATE, name=f"{name} blueprint"),
            Guild: guild,
            GuildAgent: GuildAgent.objects.create(guild=guild, agent_id=f"{name.lower()}-agent", name=f"{name}Agent",
                                                  class_name=ECHO, spec={}),
        }
    return made


# What names each model's row in a changelist.
MARKERS = {Organization: "{} Org", Membership: "{}-user", ApiKey: "{} key", Category: "{} category",
           Blueprint: "{} blueprint", Guild: "{} guild", GuildAgent: "{}Agent"}
MODELS = list(MARKERS)


def marker(model, name: str) -> str:
    return MARKERS[model].format(name.lower() if model is Membership else name)


@pytest.fixture
def rows() -> dict:
    return rows_of_two_organisations()


def logged_in(username: str, *, superuser: bool = False, **admin_of: str) -> Client:
    account = factories.user(username, staff=True, superuser=superuser)
    for org_id, role in admin_of.items():
        factories.organization(org_id.replace("_", "-"), **{username: role})
    client = Client()
    client.force_login(account)
    return client


@pytest.fixture
def a_staff(rows) -> Client:
    return logged_in("a-staff", org_a="admin")


def result_rows(response) -> str:
    """The HTML of the changelist's result table (what the user reads as rows)."""
    found = re.search(r'<table id="result_list".*?</table>', response.content.decode(), re.S)
    return found.group(0) if found else ""


def is_unreachable(client: Client, url: str) -> bool:
    response = client.get(url)
    if response.status_code == 404:
        return True
    assert response.status_code == 302, (url, response.status_code)
    page = client.get(response["Location"]).content.decode()
    return "doesn’t exist" in page or "doesn't exist" in page


@pytest.mark.parametrize("model", MODELS, ids=lambda m: m.__name__)
def test_a_staff_admin_of_org_a_sees_the_rows_of_org_a_only(a_staff, model):
    response = a_staff.get(admin_url(model, "changelist"))

    assert response.status_code == 200
    table = result_rows(response)
    assert marker(model, "Alpha") in table
    assert marker(model, "Bravo") not in table


@pytest.mark.parametrize("model", MODELS, ids=lambda m: m.__name__)
def test_nothing_on_their_changelist_names_org_b(a_staff, model):
    """Filters and choices too: org B's names (organisation, categories) do not leak from the sidebar."""
    page = a_staff.get(admin_url(model, "changelist")).content.decode()

    assert re.findall(r"Bravo[^<\"]*|bravo-user", page) == []


# GuildAgent rows are never deleted in the admin (A's or B's): no delete page to try.
ROW_PAGES = [pytest.param(model, view, id=f"{model.__name__}-{view}") for model in MODELS
             for view in ("change", "history", "delete") if not (model is GuildAgent and view == "delete")]


@pytest.mark.parametrize(("model", "view"), ROW_PAGES)
def test_org_b_rows_are_not_reachable(a_staff, rows, model, view):
    alpha, bravo = rows["Alpha"][model], rows["Bravo"][model]

    assert a_staff.get(admin_url(model, view, alpha.pk)).status_code == 200  # the page exists for their own
    assert is_unreachable(a_staff, admin_url(model, view, bravo.pk))


def test_posting_to_an_org_b_change_page_changes_nothing(a_staff, rows):
    bravo = rows["Bravo"][Blueprint]
    form = {"name": "Taken over", "description": "", "version": "", "category": "", "exposure": "public",
            "author": bravo.author_id, "organization": "org-a", "shared_with": [], "spec": "{}", "tags": "[]",
            "intro_msg": "", "icon": ""}

    a_staff.post(admin_url(Blueprint, "change", bravo.pk), form)

    bravo.refresh_from_db()
    assert (bravo.name, bravo.exposure, bravo.organization_id) == ("Bravo blueprint", "private", "org-b")


@pytest.mark.parametrize(("model", "name"), [
    pytest.param(Guild, "Bravo blueprint", id="guild-add-blueprint-choices"),  # launched from what they may read
    pytest.param(Guild, "Bravo Org", id="guild-add-organisation-choices"),
    pytest.param(Blueprint, "Bravo category", id="blueprint-add-category-choices"),
])
def test_the_add_pages_offer_nothing_of_org_b(a_staff, model, name):
    page = a_staff.get(admin_url(model, "add")).content.decode()

    assert name not in page


def test_a_guild_cannot_be_added_from_an_org_b_private_blueprint(a_staff, rows):
    bravo = rows["Bravo"][Blueprint]
    form = {"name": "Borrowed", "description": "", "blueprint": bravo.pk, "organization": "org-a",
            "launched_by": "", "spec": ""}

    response = a_staff.post(admin_url(Guild, "add"), form)

    assert not Guild.objects.filter(name="Borrowed").exists()
    assert response.status_code == 200  # the form again, with the error


@pytest.mark.django_db(transaction=True)
def test_admin_actions_act_only_on_guilds_they_may_control(a_staff, rows):
    alpha, bravo = rows["Alpha"][Guild], rows["Bravo"][Guild]
    changelist = admin_url(Guild, "changelist")

    for action in ("relaunch_guilds", "stop_guilds"):
        response = a_staff.post(changelist, {"action": action, "_selected_action": [bravo.pk]}, follow=True)
        assert response.status_code == 200
        assert "Bravo guild" not in response.content.decode()
        bravo.refresh_from_db()
        assert bravo.status == GuildStatus.RUNNING
    response = a_staff.post(changelist, {"action": "stop_guilds", "_selected_action": [alpha.pk, bravo.pk]},
                            follow=True)

    assert "Alpha guild: stopped." in response.content.decode()
    alpha.refresh_from_db()
    bravo.refresh_from_db()
    assert (alpha.status, bravo.status) == (GuildStatus.STOPPED, GuildStatus.RUNNING)


@pytest.mark.parametrize("model", MODELS, ids=lambda m: m.__name__)
def test_a_superuser_sees_every_organisations_rows(rows, model):
    root = logged_in("root", superuser=True)

    table = result_rows(root.get(admin_url(model, "changelist")))

    assert marker(model, "Alpha") in table
    assert marker(model, "Bravo") in table
    assert root.get(admin_url(model, "change", rows["Bravo"][model].pk)).status_code == 200


@pytest.mark.parametrize("who", ["staff-of-no-organisation", "staff-member-of-org-a"])
@pytest.mark.parametrize("model", MODELS, ids=lambda m: m.__name__)
def test_a_staff_user_who_administers_no_organisation_sees_none_of_them(rows, model, who):
    client = logged_in(who, org_a="member") if who == "staff-member-of-org-a" else logged_in(who)

    assert client.get(admin_url(model, "changelist")).status_code == 403
    assert client.get(admin_url(model, "change", rows["Alpha"][model].pk)).status_code in (302, 403, 404)
    assert admin_url(model, "changelist") not in client.get(reverse("admin:index")).content.decode()
