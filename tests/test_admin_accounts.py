"""The admin keeps the account rules of the API: an organisation keeps an admin, a guild's launcher is one of
its organisation's members."""

from __future__ import annotations

import pytest

from guilds.models import Guild
from guildsite.accounts.models import Membership
from tests import factories

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _fast_password_hashing(settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


def test_the_last_admin_is_neither_demoted_nor_deleted(admin_client):
    factories.organization("solo", boss="admin", helper="member")
    last = Membership.objects.get(user__username="boss")

    page = admin_client.post(f"/admin/accounts/membership/{last.pk}/change/",
                             {"user": last.user_id, "organization": "solo", "role": "member"})
    assert "last admin" in page.content.decode()
    assert admin_client.get(f"/admin/accounts/membership/{last.pk}/delete/").status_code == 403
    admin_client.post("/admin/accounts/membership/", {"action": "delete_selected", "post": "yes",
                                                        "_selected_action": [last.pk]})
    assert Membership.objects.get(pk=last.pk).role == "admin"


def test_the_organisation_page_keeps_an_admin(admin_client):
    factories.organization("solo", boss="admin")
    last = Membership.objects.get(user__username="boss")
    form = {"name": "solo", "memberships-TOTAL_FORMS": "1", "memberships-INITIAL_FORMS": "1",
            "memberships-MIN_NUM_FORMS": "0", "memberships-MAX_NUM_FORMS": "1000",
            "memberships-0-id": last.pk, "memberships-0-organization": "solo", "memberships-0-user": last.user_id,
            "memberships-0-role": "viewer"}

    page = admin_client.post("/admin/accounts/organization/solo/change/", form)

    assert "keeps at least one admin" in page.content.decode()
    assert Membership.objects.get(pk=last.pk).role == "admin"


def test_a_guild_added_in_the_admin_is_launched_by_a_member_of_its_organisation(admin_client):
    organization = factories.organization("org-g", member="member")
    stranger = factories.user("stranger")
    spec = '{"name": "G", "agents": []}'
    form = {"name": "G", "description": "", "blueprint": "", "organization": organization.pk,
            "launched_by": stranger.pk, "spec": spec}

    page = admin_client.post("/admin/guilds/guild/add/", form)

    assert "is not a member of org-g" in page.content.decode()
    assert not Guild.objects.exists()
