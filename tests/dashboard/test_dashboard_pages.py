"""The dashboard's pages over HTTP: who sees what, the first-run state, and a query count that does not grow
with the organisation."""

from __future__ import annotations

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from guilds.models import ExternalAgent, ExternalSeat, GuildAgent
from tests import factories
from tests.support.fleet import make_fleet

pytestmark = pytest.mark.django_db


def signed_in(client, username: str):
    client.force_login(factories.user(username))
    return client


def test_the_root_opens_the_dashboard_and_asks_for_a_sign_in_when_authentication_is_on(client, settings):
    settings.AUTH_DISABLED = False
    response = client.get("/")
    assert response.status_code == 302
    assert response["Location"].startswith("/accounts/login/?next=/")
    factories.organization("acme", alice="member")
    assert signed_in(client, "alice").get("/")["Location"] == "/dashboard/"
    page = client.get("/dashboard/")
    assert page.status_code == 200
    assert "Content-Security-Policy" in page


def test_development_mode_opens_the_dashboard_without_a_sign_in_on_any_organisation(client, settings):
    settings.AUTH_DISABLED = True
    factories.organization("acme", alice="admin")
    factories.organization("zeta", bob="admin")
    assert client.get("/")["Location"] == "/dashboard/"
    html = client.get("/dashboard/?org=zeta").content.decode()
    assert '<option value="acme">' in html
    assert '<option value="zeta" selected>' in html
    assert 'id="acting-as"' in html


def test_the_dashboard_shows_the_organisations_guilds_with_their_agents_and_figures(client, settings):
    settings.AUTH_DISABLED = False
    make_fleet("acme", admin="boss", guilds=2, agents_per_guild=3, prefix="acme")
    theirs = make_fleet("other", admin="eve", guilds=1, agents_per_guild=1, prefix="secret")[0]
    html = signed_in(client, "boss").get("/dashboard/").content.decode()
    assert "acme-0000" in html
    assert "acme-0001" in html
    assert "secret-0000" not in html  # another organisation's guild
    assert html.count('class="guild-row"') == 2
    assert "agent 2" in html  # the search finds a guild by its agents' names
    # Each agent ran once today and once three days ago: a guild of three, 3 runs today and 6 this week.
    assert html.count('data-runs-today="3"') == 2
    assert html.count('data-runs-week="6"') == 2
    assert 'data-dead="1"' in html
    ours = make_fleet("acme", admin="boss", guilds=1, agents_per_guild=3, prefix="acme-more")[0]
    rows = client.get(f"/dashboard/guilds/{ours.pk}/agents/").content.decode()
    assert rows.count('class="agent-row"') == 3
    assert ">llm<" in rows
    assert ">built-in<" in rows
    assert client.get(f"/dashboard/guilds/{theirs.pk}/agents/").status_code == 404


def test_another_organisations_dashboard_and_guild_pages_answer_404(client, settings):
    settings.AUTH_DISABLED = False
    theirs = make_fleet("other", admin="eve", guilds=1, agents_per_guild=1)[0]
    factories.organization("acme", alice="member")
    signed_in(client, "alice")
    assert client.get("/dashboard/?org=other").status_code == 404
    assert client.get(f"/dashboard/guilds/{theirs.pk}/").status_code == 404
    assert client.get("/dashboard/guilds/no-such-guild/").status_code == 404


def test_the_guild_page_shows_management_sections_only_to_those_who_may_manage(client, settings):
    settings.AUTH_DISABLED = False
    guild = make_fleet("acme", admin="boss", guilds=1, agents_per_guild=2)[0]
    factories.organization("acme", viewer="viewer")
    html = signed_in(client, "boss").get(f"/dashboard/guilds/{guild.pk}/").content.decode()
    assert 'id="dead-letters"' in html
    assert "Redeliver" in html
    assert 'id="message-browser"' in html
    client.logout()
    html = signed_in(client, "viewer").get(f"/dashboard/guilds/{guild.pk}/").content.decode()
    assert 'id="agents"' in html
    assert 'id="dead-letters"' not in html
    assert 'id="message-browser"' not in html


def test_an_external_seat_is_marked_with_its_registration(client, settings):
    settings.AUTH_DISABLED = False
    guild = make_fleet("acme", admin="boss", guilds=1, agents_per_guild=1)[0]
    helper = ExternalAgent.objects.create(organization_id="acme", name="Helper")
    GuildAgent.objects.create(guild=guild, agent_id="helper", name="Helper", class_name="guilds.agents.external.ExternalAgent",
                              spec={})
    ExternalSeat.objects.create(agent=helper, guild=guild, seat_id="helper", seat_name="Helper")
    html = signed_in(client, "boss").get(f"/dashboard/guilds/{guild.pk}/agents/").content.decode()
    assert f'data-external-id="{helper.pk}"' in html
    assert ">external<" in html


def test_an_organisation_with_no_guild_says_what_to_do_next(client, settings):
    settings.AUTH_DISABLED = False
    factories.organization("empty", alice="member")
    html = signed_in(client, "alice").get("/dashboard/").content.decode()
    assert "No guilds yet" in html
    client.logout()
    factories.user("loner")
    html = signed_in(client, "loner").get("/dashboard/").content.decode()
    assert "not a member of any organisation" in html


def test_the_dashboards_query_count_does_not_grow_with_guilds_and_agents(client, settings):
    settings.AUTH_DISABLED = False
    make_fleet("small", admin="boss", guilds=2, agents_per_guild=2, prefix="small")
    make_fleet("large", admin="boss", guilds=200, agents_per_guild=5, prefix="large")
    signed_in(client, "boss")
    client.get("/dashboard/?org=small")  # sessions, content types: cached from here on
    with CaptureQueriesContext(connection) as small:
        assert client.get("/dashboard/?org=small").status_code == 200
    with CaptureQueriesContext(connection) as large:
        page = client.get("/dashboard/?org=large")
    assert page.status_code == 200
    assert page.content.decode().count('class="guild-row"') == 200
    assert len(large) == len(small), [q["sql"][:120] for q in large.captured_queries]


def test_a_guilds_agent_rows_cost_the_same_queries_for_one_agent_or_fifty(client, settings):
    settings.AUTH_DISABLED = False
    one = make_fleet("acme", admin="boss", guilds=1, agents_per_guild=1, prefix="one")[0]
    many = make_fleet("acme", admin="boss", guilds=1, agents_per_guild=50, prefix="many")[0]
    signed_in(client, "boss")
    client.get(f"/dashboard/guilds/{one.pk}/agents/")
    with CaptureQueriesContext(connection) as few:
        client.get(f"/dashboard/guilds/{one.pk}/agents/")
    with CaptureQueriesContext(connection) as lots:
        rows = client.get(f"/dashboard/guilds/{many.pk}/agents/").content.decode()
    assert rows.count('class="agent-row"') == 50
    assert len(lots) == len(few)


def test_today_is_the_viewers_day_and_their_zone_comes_from_the_tz_cookie(client, settings):
    import zoneinfo
    from datetime import UTC, datetime

    from guilds.dashboard.selectors import dashboard_guilds
    from guilds.models import Run
    from guildsite.identity import Actor

    settings.AUTH_DISABLED = False
    guild = make_fleet("acme", admin="boss", guilds=1, agents_per_guild=1)[0]
    Run.objects.filter(guild=guild).delete()
    now = datetime(2026, 12, 6, 11, 0, tzinfo=UTC)  # 01:00 on the 7th in Kiritimati (UTC+14)
    for hour in (9, 10):  # 09:30 is the 6th there, 10:30 the 7th
        run = factories.run(guild, agent_id="agent-0")
        Run.objects.filter(pk=run.pk).update(created_at=now.replace(hour=hour, minute=30))
    boss = Actor(user=factories.user("boss"))

    def runs_today(zone: str) -> int:
        return dashboard_guilds(actor=boss, organization_id="acme", zone=zoneinfo.ZoneInfo(zone), now=now)[0].today.runs

    assert runs_today("UTC") == 2
    assert runs_today("Pacific/Kiritimati") == 1

    signed_in(client, "boss")
    for cookie, shown in [("Pacific/Kiritimati", "Pacific/Kiritimati"), ("Europe%2FParis", "Europe/Paris"),
                          ("America", "UTC"), ("../../etc/passwd", "UTC"), ("x" * 500, "UTC")]:
        client.cookies["tz"] = cookie
        page = client.get("/dashboard/")
        assert page.status_code == 200, cookie
        assert f"times in {shown}" in page.content.decode(), cookie


def test_viewers_see_no_dead_letter_counts_or_stop_and_unpriced_costs_say_at_least(client, settings):
    from guilds.models import Run

    settings.AUTH_DISABLED = False
    guild = make_fleet("acme", admin="boss", guilds=1, agents_per_guild=1)[0]
    Run.objects.filter(guild=guild).update(cost_usd=None)  # tokens counted, no price
    factories.organization("acme", viewer="viewer")
    html = signed_in(client, "boss").get("/dashboard/").content.decode()
    assert 'data-dead="1"' in html
    assert 'class="stop"' in html
    assert "at least: 1 run of a model without a price" in html  # today's
    assert "at least: 2 runs of a model without a price" in html  # the week's
    client.logout()
    html = signed_in(client, "viewer").get("/dashboard/").content.decode()
    assert 'data-dead=""' in html
    assert 'class="stop"' not in html
    assert 'id="launch-open"' not in html
    rows = client.get(f"/dashboard/guilds/{guild.pk}/agents/").content.decode()
    assert 'class="run-now"' not in rows  # a viewer may not message an agent, nor fire its schedule
    assert "data-schedule-id" not in rows


def test_the_sign_in_redirect_keeps_the_whole_address(client, settings):
    settings.AUTH_DISABLED = False
    response = client.get("/dashboard/?org=acme&next=/elsewhere")
    assert response.status_code == 302
    assert response["Location"] == "/accounts/login/?next=/dashboard/%3Forg%3Dacme%26next%3D/elsewhere"
