"""The catalog pages over HTTP: who sees which blueprints, another organisation's blueprint is not found, and the
edit link and form only for those who may change a blueprint (the writes themselves are the REST API's)."""

from __future__ import annotations

import pytest

from catalog.models import Exposure
from catalog.services import agent_entry_register
from tests import factories

pytestmark = pytest.mark.django_db

REDIS_SPEC = {**factories.ECHO_SPEC, "name": "Redis echo", "properties": {"messaging": {
    "backend_module": "rustic_ai.redis.messaging.backend", "backend_class": "RedisMessagingBackend",
    "backend_config": {"redis_client": {"host": "localhost", "port": 6379}}}}}


def signed_in(client, username: str):
    client.force_login(factories.user(username))
    return client


@pytest.fixture
def catalog(settings):
    settings.AUTH_DISABLED = False
    settings.GUILDSITE_SPEC_REDIS_ALLOWED = ["localhost:6379"]
    factories.organization("acme", boss="admin", alice="member", viewer="viewer")
    factories.organization("other", eve="admin")
    return {
        "ours": factories.blueprint(author="alice", org="acme", exposure=Exposure.ORGANIZATION, name="Ours"),
        "alices": factories.blueprint(author="alice", org="acme", exposure=Exposure.PRIVATE, name="Alices draft"),
        "redis": factories.blueprint(author="boss", org="acme", exposure=Exposure.ORGANIZATION, name="Needs redis",
                                     spec=REDIS_SPEC),
        "theirs": factories.blueprint(author="eve", org="other", exposure=Exposure.PRIVATE, name="Their secret"),
        "shared": factories.blueprint(author="eve", org="other", exposure=Exposure.PUBLIC, name="Their public"),
    }


def test_the_catalog_asks_for_a_sign_in(client, settings):
    settings.AUTH_DISABLED = False
    response = client.get("/dashboard/catalog/")
    assert response.status_code == 302
    assert response["Location"].startswith("/accounts/login/?next=/dashboard/catalog/")


def test_the_list_shows_only_the_blueprints_the_viewer_may_read(client, catalog):
    agent_entry_register(qualified_class_name=factories.ECHO)
    page = signed_in(client, "viewer").get("/dashboard/catalog/")
    assert page.status_code == 200
    assert "Content-Security-Policy" in page
    html = page.content.decode()
    assert "Ours" in html
    assert "Their public" in html  # public: every signed-in user reads it
    assert "Their secret" not in html  # another organisation's private blueprint
    assert "Alices draft" not in html  # private: its author and the admins
    assert "needs Redis" in html
    assert "echo_agent.EchoAgent" in html  # the agent classes, with their properties schema
    assert "Properties schema" in html
    assert signed_in(client, "alice").get("/dashboard/catalog/").content.decode().count("Alices draft") >= 1
    assert "Their secret" in signed_in(client, "eve").get("/dashboard/catalog/").content.decode()


def test_another_organisations_private_blueprint_page_is_not_found(client, catalog):
    signed_in(client, "boss")
    assert client.get(f"/dashboard/catalog/blueprints/{catalog['theirs'].pk}/").status_code == 404
    assert client.get("/dashboard/catalog/blueprints/no-such-blueprint/").status_code == 404
    assert client.get(f"/dashboard/catalog/blueprints/{catalog['shared'].pk}/").status_code == 200


def test_the_edit_link_and_the_form_are_only_for_those_who_may_change_it(client, catalog):
    ours = catalog["ours"]
    edit_link = f'class="button edit" href="/dashboard/catalog/blueprints/{ours.pk}/"'
    # Its author and the organisation's admin may change it; a viewer, or a member who did not write it, may not.
    for username, may in (("alice", True), ("boss", True), ("viewer", False)):
        client.logout()
        html = signed_in(client, username).get("/dashboard/catalog/").content.decode()
        assert (edit_link in html) is may, username
        page = client.get(f"/dashboard/catalog/blueprints/{ours.pk}/").content.decode()
        assert ('id="blueprint-form"' in page) is may, username
        assert ('id="spec-readonly"' in page) is not may, username
    # A viewer may not create or launch: no button for what the API would refuse.
    assert 'id="blueprint-new"' not in html
    assert 'class="launch"' not in html
    client.logout()
    factories.organization("acme", carol="member")
    html = signed_in(client, "carol").get("/dashboard/catalog/").content.decode()
    assert edit_link not in html
    assert 'id="blueprint-new"' in html
    assert f'data-blueprint-id="{ours.pk}"' in html


def test_the_form_offers_the_viewers_organisations_and_shows_secrets_masked(client, catalog, settings):
    spec = {**REDIS_SPEC, "properties": {**REDIS_SPEC["properties"], "api_token": "s3cret-value"}}
    secret = factories.blueprint(author="boss", org="acme", exposure=Exposure.PRIVATE, name="With secret", spec=spec)
    html = signed_in(client, "boss").get("/dashboard/catalog/blueprints/new/").content.decode()
    assert '<option value="acme">' in html
    assert '<option value="other">' not in html  # not boss's organisation
    page = client.get(f"/dashboard/catalog/blueprints/{secret.pk}/").content.decode()
    assert "s3cret-value" not in page
    assert '"api_token": "***"' in page


def test_the_form_never_widens_a_blueprint_by_itself(client, catalog):
    from catalog.models import Blueprint

    signed_in(client, "alice")
    new = client.get("/dashboard/catalog/blueprints/new/").content.decode()
    assert '<option value="private" selected>' in new  # as the API's default, not the list's first choice
    Blueprint.objects.filter(pk=catalog["ours"].pk).update(exposure=Exposure.ORGANIZATION_AND_CHILDREN)
    old = client.get(f"/dashboard/catalog/blueprints/{catalog['ours'].pk}/").content.decode()
    assert '<option value="organization" selected>' in old
    assert '<option value="public" selected>' not in old


def test_the_lists_query_count_does_not_grow_with_blueprints(client, catalog):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    signed_in(client, "alice").get("/dashboard/catalog/")  # sessions, content types: cached from here on
    with CaptureQueriesContext(connection) as few:
        client.get("/dashboard/catalog/")
    for number in range(20):
        factories.blueprint(author="alice" if number % 2 else "boss", org="acme", exposure=Exposure.ORGANIZATION,
                            name=f"More {number}")
    with CaptureQueriesContext(connection) as many:
        html = client.get("/dashboard/catalog/").content.decode()
    assert html.count("More ") >= 20
    assert html.count('class="button edit"') == 10 + 2  # hers: ten new, two from the fixture (not boss's, an admin's)
    assert len(many) == len(few), [query["sql"][:120] for query in many.captured_queries]
