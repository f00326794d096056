"""The runs pages over HTTP: the filters, totals and per-day figures, who sees which run and its conversation,
bad filter input, and a query count that does not grow with the runs."""

from __future__ import annotations

from datetime import UTC, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from guilds.models import Run
from tests import factories

pytestmark = pytest.mark.django_db


@pytest.fixture
def signed_in(client, settings):
    settings.AUTH_DISABLED = False

    def as_user(username: str):
        client.force_login(factories.user(username))
        return client
    return as_user


def aged(run: Run, age: timedelta) -> Run:
    """created_at is auto_now_add: an older run is moved back afterwards."""
    Run.objects.filter(pk=run.pk).update(created_at=timezone.now() - age)
    return run


def test_the_list_shows_the_viewers_runs_with_totals_and_bars_per_day(signed_in):
    guild = factories.guild("Ours", org="acme", user="boss")
    factories.run(guild, agent_id="writer")
    factories.run(guild, agent_id="writer", cost_usd=None, model="mystery-model")  # no price: the cost is at least
    aged(factories.run(guild, agent_id="critic", input_tokens=100, output_tokens=50, cost_usd=Decimal("0.02")),
         timedelta(days=2))
    theirs = factories.guild("Theirs", org="other", user="eve")
    secret = factories.run(theirs, agent_id="writer")
    html = signed_in("boss").get("/dashboard/runs/").content.decode()
    assert html.count('class="run-row"') == 3
    assert secret.pk not in html
    assert 'data-runs="3"' in html
    assert 'data-tokens="180"' in html
    assert "at least $0.021000" in html
    assert "1 run without a price" in html
    # 7 days of bars per chart (the default range spans 8 calendar days), a title on each bar.
    assert html.count('<rect class="bar"') == 3 * 8
    assert html.count("</title></rect>") == 3 * 8
    assert ": 2 runs</title>" in html
    assert ": 150 tokens</title>" in html
    assert 'role="img"' in html


def test_the_filters_narrow_the_list_and_the_totals(signed_in):
    guild = factories.guild("Ours", org="acme", user="boss")
    other = factories.guild("Second", org="acme", user="boss")
    factories.run(guild, agent_id="writer", status="failed", trigger="schedule")
    factories.run(guild, agent_id="critic")
    factories.run(other, agent_id="writer")
    aged(factories.run(guild, agent_id="writer"), timedelta(days=20))
    client = signed_in("boss")

    def count(query: str) -> int:
        return client.get(f"/dashboard/runs/?{query}").content.decode().count('class="run-row"')

    assert count("") == 3  # the last 7 days
    assert count("range=30d") == 4
    assert count(f"guild={guild.pk}") == 2
    assert count("agent=writer") == 2
    assert count("status=failed") == 1
    assert count("status=succeeded&status=failed") == 3
    assert count("trigger=schedule") == 1
    day = timezone.localdate() - timedelta(days=20)
    assert count(f"range=custom&from={day}&to={day}") == 1
    html = client.get(f"/dashboard/runs/?guild={guild.pk}&agent=writer").content.decode()
    assert 'data-runs="1"' in html
    assert f'<option value="{guild.pk}" selected>' in html


def test_bad_filter_input_is_ignored_with_a_note(signed_in):
    guild = factories.guild("Ours", org="acme", user="boss")
    factories.run(guild)
    client = signed_in("boss")
    response = client.get("/dashboard/runs/?status=exploded&trigger=x&range=forever&page=-3&agent=" + "a" * 500)
    assert response.status_code == 200
    html = response.content.decode()
    assert 'id="filter-notes"' in html
    assert "Ignored the status &#x27;exploded&#x27;" in html
    assert "Ignored the range" in html
    assert "Ignored the page" in html
    assert "Ignored the agent" in html
    assert html.count('class="run-row"') == 1  # the rest of the filter (none) still applies
    html = client.get("/dashboard/runs/?range=custom&from=2026-13-45&to=yesterday").content.decode()
    assert "a day is written 2026-12-06" in html
    html = client.get("/dashboard/runs/?from=2020-01-01&to=2026-01-01").content.decode()
    assert "Shortened the range to 366 days" in html


def test_the_list_pages_with_an_older_link(signed_in):
    guild = factories.guild("Ours", org="acme", user="boss")
    Run.objects.bulk_create([Run(guild=guild, agent_id="llm", status="succeeded") for _ in range(55)])
    client = signed_in("boss")
    first = client.get("/dashboard/runs/?agent=llm").content.decode()
    assert first.count('class="run-row"') == 50
    assert 'id="older"' in first
    assert "agent=llm" in first.split('id="older"')[0].rsplit("href=", 1)[1]
    second = client.get("/dashboard/runs/?agent=llm&page=2").content.decode()
    assert second.count('class="run-row"') == 5
    assert 'id="older"' not in second


def test_another_organisations_run_is_404_and_a_viewer_does_not_read_the_conversation(signed_in):
    guild = factories.guild("Ours", org="acme", user="boss")
    factories.organization("acme", viewer="viewer")
    thread = factories.thread(guild, "boss")
    run = factories.run(guild, of=thread, message_id=7, time_to_first_token_ms=120, duration_ms=900,
                        started_at=timezone.now(), tool_calls=[{"id": "c1", "tool": "forecast", "server": "weather",
                                                                "ok": True, "duration_ms": 30}])
    factories.thread_message(thread, "user", "Weather in Paris?", bus_message_id=7)
    factories.thread_message(thread, "assistant", "", run=run, tool_calls=[
        {"id": "c1", "type": "function", "function": {"name": "forecast", "arguments": '{"city": "Paris"}'}}])
    factories.thread_message(thread, "tool", "Sunny and 21 C in Paris", run=run, tool_call_id="c1")
    factories.thread_message(thread, "assistant", "It is sunny.", run=run)
    factories.thread_message(thread, "user", "Another question, another run", bus_message_id=8)
    theirs = factories.run(factories.guild("Theirs", org="other", user="eve"))

    html = signed_in("boss").get(f"/dashboard/runs/{run.pk}/").content.decode()
    assert "Weather in Paris?" in html
    assert "{&quot;city&quot;: &quot;Paris&quot;}" in html  # the tool's input
    assert "Sunny and 21 C in Paris" in html  # its output
    assert "Another question" not in html  # another run's
    assert 'id="timing-first-token">120 ms' in html
    assert 'id="timing-total">900 ms' in html
    assert f'href="/dashboard/guilds/{guild.pk}/"' in html
    assert 'id="run-cancel"' not in html  # it ended
    assert signed_in("boss").get(f"/dashboard/runs/{theirs.pk}/").status_code == 404
    assert signed_in("boss").get("/dashboard/runs/no-such-run/").status_code == 404
    assert signed_in("boss").get(f"/dashboard/runs/{'x' * 500}/").status_code == 404

    viewer = signed_in("viewer").get(f"/dashboard/runs/{run.pk}/").content.decode()
    assert "forecast" in viewer  # the run's record of its tool call
    assert "Sunny and 21 C" not in viewer
    assert "Weather in Paris?" not in viewer


def test_a_running_run_offers_cancel_to_who_may_cancel_it(signed_in):
    guild = factories.guild("Ours", org="acme", user="boss")
    factories.organization("acme", viewer="viewer")
    run = factories.run(guild, status="running", input_tokens=None, output_tokens=None, cost_usd=None)
    assert 'id="run-cancel"' in signed_in("boss").get(f"/dashboard/runs/{run.pk}/").content.decode()
    assert 'id="run-cancel"' not in signed_in("viewer").get(f"/dashboard/runs/{run.pk}/").content.decode()
    html = signed_in("boss").get("/dashboard/runs/").content.decode()
    assert "at least" in html  # its tokens and cost are not known yet


def test_the_pages_ask_for_a_sign_in(client, settings):
    settings.AUTH_DISABLED = False
    assert client.get("/dashboard/runs/")["Location"].startswith("/accounts/login/?next=/dashboard/runs/")
    assert client.get("/dashboard/runs/abc/").status_code == 302


def test_per_day_is_the_viewers_day(signed_in):
    guild = factories.guild("Ours", org="acme", user="boss")
    run = factories.run(guild)
    # 23:30 UTC yesterday is the next day in Tokyo (UTC+9).
    late = timezone.now().astimezone(UTC).replace(hour=23, minute=30, second=0, microsecond=0) - timedelta(days=1)
    Run.objects.filter(pk=run.pk).update(created_at=late)
    client = signed_in("boss")
    client.cookies["tz"] = "Asia/Tokyo"
    html = client.get("/dashboard/runs/?range=30d").content.decode()
    tokyo_day = late.astimezone(ZoneInfo("Asia/Tokyo")).date()
    assert tokyo_day != late.date()
    assert f"{tokyo_day:%b} {tokyo_day.day}: 1 run</title>" in html


def test_the_list_costs_the_same_queries_for_5_runs_as_for_200(signed_in):
    guild = factories.guild("Ours", org="acme", user="boss")
    other = factories.guild("Second", org="acme", user="boss")
    client = signed_in("boss")

    def runs(n: int) -> None:
        Run.objects.bulk_create([Run(guild=(guild, other)[i % 2], agent_id=f"agent-{i % 7}", status="succeeded",
                                     input_tokens=3, output_tokens=2, cost_usd=Decimal("0.001")) for i in range(n)])

    runs(5)
    client.get("/dashboard/runs/")  # the session and the like, read once
    with CaptureQueriesContext(connection) as few:
        assert client.get("/dashboard/runs/").status_code == 200
    runs(195)
    with CaptureQueriesContext(connection) as lots:
        html = client.get("/dashboard/runs/").content.decode()
    assert 'data-runs="200"' in html
    assert len(lots) == len(few), [q["sql"][:120] for q in lots.captured_queries]
