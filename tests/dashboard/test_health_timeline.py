"""A guild's health timeline: every move of its status, recorded where it is made, newest first on the guild page
whatever the volume of its health reports, and bounded per guild."""

from __future__ import annotations

import re

import pytest

from guilds.models import STATUS_CHANGES_KEPT, GuildStatus, GuildStatusChange
from guilds.runtime import loop as runtime_loop
from guilds.runtime import store
from tests import factories

pytestmark = pytest.mark.django_db(transaction=True)


def move(guild_id: str, status: str, detail: str = "") -> bool:
    return runtime_loop.run(store.guild_status_set(guild_id, status, detail))


def test_each_move_is_recorded_and_the_guild_page_lists_them_newest_first(client, settings):
    settings.AUTH_DISABLED = False
    guild = factories.guild("Timed", org="acme", user="boss")
    factories.organization("acme", watcher="viewer")
    for status in (GuildStatus.PENDING_LAUNCH, GuildStatus.STARTING, GuildStatus.RUNNING):
        assert move(guild.pk, status)
    assert move(guild.pk, GuildStatus.WARNING, "agent echo is late")
    assert not move(guild.pk, GuildStatus.WARNING, "agent echo is very late")  # no move: no new line
    assert move(guild.pk, GuildStatus.RUNNING)
    recorded = list(GuildStatusChange.objects.filter(guild=guild).values_list("status", "detail"))
    assert recorded == [("RUNNING", ""), ("WARNING", "agent echo is late"), ("RUNNING", ""), ("STARTING", ""),
                        ("PENDING_LAUNCH", "")]

    # Anyone who sees the guild sees its timeline (its status and moves are theirs to see live anyway).
    client.force_login(factories.user("watcher"))
    html = client.get(f"/dashboard/guilds/{guild.pk}/").content.decode()
    timeline = html[html.index('id="health-timeline"'):]
    timeline = timeline[:timeline.index("</ol>")]
    assert re.findall(r'<span class="pill (\w+)">', timeline) == ["RUNNING", "WARNING", "RUNNING", "STARTING",
                                                                   "PENDING_LAUNCH"]
    assert 'title="agent echo is late"' in timeline
    # What the page reads again when it hears a move: the same lines, alone.
    fragment = client.get(f"/dashboard/guilds/{guild.pk}/timeline/").content.decode()
    assert re.findall(r'<span class="pill (\w+)">', fragment) == ["RUNNING", "WARNING", "RUNNING", "STARTING",
                                                                   "PENDING_LAUNCH"]


def test_another_organisations_timeline_is_not_found(client, settings):
    settings.AUTH_DISABLED = False
    theirs = factories.guild("Theirs", org="other", user="eve", status=GuildStatus.RUNNING)
    assert move(theirs.pk, GuildStatus.WARNING, "their secret trouble")
    factories.organization("acme", alice="admin")
    client.force_login(factories.user("alice"))
    for path in (f"/dashboard/guilds/{theirs.pk}/timeline/", "/dashboard/guilds/no-such-guild/timeline/"):
        answer = client.get(path)
        assert answer.status_code == 404, path
        assert "their secret trouble" not in answer.content.decode()
    client.logout()
    assert client.get(f"/dashboard/guilds/{theirs.pk}/timeline/").status_code == 404  # signed out


def test_a_guild_keeps_its_newest_moves_only(settings):
    guild = factories.guild("Flapping", status=GuildStatus.RUNNING)
    for _ in range(STATUS_CHANGES_KEPT // 2 + 3):
        assert move(guild.pk, GuildStatus.WARNING, "late")
        assert move(guild.pk, GuildStatus.RUNNING)
    kept = GuildStatusChange.objects.filter(guild=guild)
    assert kept.count() == STATUS_CHANGES_KEPT
    assert kept.first().status == GuildStatus.RUNNING  # the newest stays
    other = factories.guild("Quiet", status=GuildStatus.RUNNING)
    assert move(other.pk, GuildStatus.STOPPED)
    assert GuildStatusChange.objects.filter(guild=other).count() == 1  # another guild's trimming leaves it alone


def test_a_guild_with_no_recorded_move_says_so(client, settings):
    settings.AUTH_DISABLED = False
    guild = factories.guild("Old", org="acme", user="boss", status=GuildStatus.RUNNING)
    client.force_login(factories.user("boss"))
    assert "No status change recorded yet." in client.get(f"/dashboard/guilds/{guild.pk}/").content.decode()
