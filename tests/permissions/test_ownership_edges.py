"""Edges of ownership: an author who left the organisation, and who may delete a guild's file."""

from __future__ import annotations

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from guildsite.accounts.models import Membership
from tests import factories

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _auth_on(settings, tmp_path):
    settings.AUTH_DISABLED = False
    settings.MEDIA_ROOT = str(tmp_path)


def test_an_author_who_left_the_organisation_loses_their_private_blueprint(api):
    blueprint = factories.blueprint(author="writer", org="org-x", exposure="private")
    url = f"/catalog/blueprints/{blueprint.pk}"
    assert api.get(url, **factories.bearer("writer")).status_code == 200

    Membership.objects.filter(user__username="writer", organization_id="org-x").delete()

    assert api.get(url, **factories.bearer("writer")).status_code == 404
    assert api.patch(url, {"exposure": "public"}, **factories.bearer("writer")).status_code == 404
    assert blueprint.pk not in {b["id"] for b in api.get("/catalog/blueprints/", **factories.bearer("writer")).json()}


def test_an_author_demoted_to_viewer_no_longer_changes_their_blueprint(api):
    blueprint = factories.blueprint(author="writer", org="org-x", exposure="organization")
    factories.organization("org-x", writer="viewer")

    response = api.patch(f"/catalog/blueprints/{blueprint.pk}", {"description": "mine"}, **factories.bearer("writer"))

    assert response.status_code == 403


def upload(api, guild, username: str, name: str):
    return api.post(f"/api/guilds/{guild.pk}/files/", {"file": SimpleUploadedFile(name, b"bytes")},
                    format="multipart", **factories.bearer(username))


@pytest.mark.parametrize(("deleter", "status"), [("ann", 204), ("bob", 403), ("boss", 204), ("org-admin", 204)])
def test_a_file_is_deleted_by_its_uploader_the_launcher_or_an_admin(api, deleter, status):
    factories.organization("org-f", boss="member", ann="member", bob="member", **{"org-admin": "admin"})
    guild = factories.guild(org="org-f", user="boss")
    factories.joined(guild, "ann")
    factories.joined(guild, "bob")
    assert upload(api, guild, "ann", "anns.txt").status_code == 201

    response = api.delete(f"/api/guilds/{guild.pk}/files/anns.txt", **factories.bearer(deleter))

    assert response.status_code == status, response.content
    listed = api.get(f"/api/guilds/{guild.pk}/files/", **factories.bearer("boss")).json()
    assert [f["name"] for f in listed] == ([] if status == 204 else ["anns.txt"])


@pytest.mark.parametrize("who", ["viewer", "read key"])
def test_a_guild_member_who_may_only_read_adds_no_file(api, who):
    factories.organization("org-r", boss="member", reader="member")
    guild = factories.guild(org="org-r", user="boss")
    factories.joined(guild, "reader")
    if who == "viewer":
        factories.organization("org-r", reader="viewer")
        headers = factories.bearer("reader")
    else:
        _, key = factories.api_key("org-r", "reader", scopes=["read"])
        headers = {"HTTP_AUTHORIZATION": f"Bearer {key}"}
    response = api.post(f"/api/guilds/{guild.pk}/files/", {"file": SimpleUploadedFile("x.txt", b"x")},
                        format="multipart", **headers)

    assert response.status_code == 403, response.content
    assert api.get(f"/api/guilds/{guild.pk}/files/", **headers).status_code == 200  # reading stays allowed


def test_readers_of_a_shared_blueprint_see_only_their_own_organisation_in_shared_with(api):
    blueprint = factories.blueprint(author="writer", org="org-s", exposure="shared")
    factories.organization("partner-1", p1="member")
    factories.organization("partner-2", p2="member")
    blueprint.shared_with.add("partner-1", "partner-2")

    as_author = api.get(f"/catalog/blueprints/{blueprint.pk}", **factories.bearer("writer")).json()
    as_partner = api.get(f"/catalog/blueprints/{blueprint.pk}", **factories.bearer("p1")).json()

    assert as_author["shared_with"] == ["partner-1", "partner-2"]
    assert as_partner["shared_with"] == ["partner-1"]
