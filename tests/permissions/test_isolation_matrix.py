"""The isolation matrix of issue 11: every actor against every edge, with the exact outcome.

TABLE is the one table: a row per operation, a column per actor. MATRIX flattens it (plus a few
cells for an org-B read key and for development mode) into (actor, operation, expected) rows that
drive three parametrised tests: REST cells (no running guild), control cells (stop and relaunch
act through the runtime's own database threads, so their database is committed) and socket cells
(a guild running on each engine of the `rig`).

Expected: an HTTP status or a socket close code; for lists, the names the actor sees; for an
accepted socket, what the user then notices (OPEN: the first health report; ECHO: the echo of a
chat message; STOPPED: the guild stops; KEEPS_RUNNING: a FORBIDDEN error frame, and the guild
still answers; JOINED: after chatting they are a member of the guild, so its files and their own
history, echo included, are theirs to read over REST); for a live topic, subscribe_ack or the refusal's reason.
Every cell builds its own world, so a cell
that stops a guild affects no other. Later issues add rows here."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import pytest
from asgiref.sync import sync_to_async
from channels.db import database_sync_to_async
from django.core.files.uploadedfile import SimpleUploadedFile
from django.utils import timezone
from rest_framework.test import APIClient

from catalog.models import Blueprint
from guilds import triggers, webhooks
from guilds.engines import engine_named
from guilds.external import commands, registry
from guilds.models import (
    Budget,
    DeliveryStatus,
    ExternalAgent,
    Guild,
    GuildFile,
    GuildStatus,
    Run,
    Schedule,
    Thread,
    Trigger,
    Webhook,
    WebhookDelivery,
)
from guilds.runtime import cancellation
from guilds.services import guild_stop
from tests import factories
from tests.permissions.conftest import ACTORS, ERROR, FILE_BYTES, FILE_NAME, ORG_A, ORG_B, ORG_C, REPORT, Who
from tests.support.sockets import Socket

OPEN, ECHO, STOPPED, KEEPS_RUNNING, JOINED = "open", "echo", "stopped", "keeps running", "joined"
ACK, NOT_FOUND = "subscribe_ack", "not_found"  # a live topic followed, or refused with this reason


def sees(*names: str) -> frozenset[str]:
    return frozenset(names)


A_ALL = sees("A-private", "A-org", "A-shared", "A-public")
A_READ = sees("A-org", "A-shared", "A-public")
B_ADMIN_READ = sees("A-shared", "A-public", "B-private", "B-org")
B_READ = sees("A-shared", "A-public", "B-org")  # the keys act as b-admin capped below admin: no B-private
EVERY_BLUEPRINT = A_ALL | sees("B-private", "B-org")
GUILD_A, GUILD_B = sees("guild-a"), sees("guild-b")
NONE, LAUNCHERS, B_MEMBERS = sees(), sees("launcher's"), sees("b-member's")  # thread titles
RUNS_A, RUNS_B = sees("llm-a"), sees("llm-b")  # runs by agent id
EXT_A, EXT_B = sees("ext-a"), sees("ext-b")  # external agents by name
MESSAGES, HIDDEN = "messages", "hidden"  # a run's detail with its thread's messages, or with null

COLUMNS = ("A-admin", "A-launcher", "A-member", "A-viewer", "B-admin", "B-member", "B-key", "anonymous")

TABLE: list[tuple[Any, ...]] = [
    # operation                      A-admin  A-launcher A-member A-viewer B-admin  B-member B-key    anonymous
    ("blueprint-list",               A_ALL,   A_ALL,     A_READ,  A_READ,  B_ADMIN_READ, B_READ, B_READ, 401),
    ("blueprint-detail-private",     200,     200,       404,     404,     404,     404,     404,     401),
    ("blueprint-detail-org",         200,     200,       200,     200,     404,     404,     404,     401),
    ("blueprint-detail-shared",      200,     200,       200,     200,     200,     200,     200,     401),
    ("blueprint-detail-public",      200,     200,       200,     200,     200,     200,     200,     401),
    ("blueprint-create-in-org-a",    201,     201,       201,     403,     404,     404,     404,     401),
    ("blueprint-create-at-home",     201,     201,       201,     403,     201,     201,     201,     401),
    ("blueprint-update-org",         200,     200,       403,     403,     404,     404,     404,     401),
    ("blueprint-update-shared",      200,     200,       403,     403,     403,     403,     403,     401),
    ("blueprint-share-org",          204,     204,       403,     403,     404,     404,     404,     401),
    ("blueprint-unshare-shared",     204,     204,       403,     403,     403,     403,     403,     401),
    ("launch-private",               201,     201,       404,     404,     404,     404,     404,     401),
    ("launch-org",                   201,     201,       201,     403,     404,     404,     404,     401),
    ("launch-shared",                201,     201,       201,     403,     201,     201,     201,     401),
    ("launch-public",                201,     201,       201,     403,     201,     201,     201,     401),
    ("launch-as-another-user",       403,     403,       403,     403,     403,     403,     403,     401),
    ("launch-into-another-org",      404,     404,       404,     404,     404,     404,     404,     401),
    ("guild-list",                   GUILD_A, GUILD_A,   GUILD_A, GUILD_A, GUILD_B, GUILD_B, GUILD_B, 401),
    ("guild-detail",                 200,     200,       200,     200,     404,     404,     404,     401),
    ("stop",                         200,     200,       403,     403,     404,     404,     404,     401),
    ("relaunch",                     200,     200,       403,     403,     404,     404,     404,     401),
    ("history-of-launcher",          200,     200,       403,     403,     404,     404,     404,     401),
    ("history-of-one-never-joined",  404,     404,       404,     403,     404,     404,     404,     401),
    # Browsing every topic of a guild: whoever may read every user's history (its launcher, its org's admins).
    ("guild-history",                200,     200,       403,     403,     404,     404,     404,     401),
    ("files-list",                   200,     200,       403,     403,     404,     404,     404,     401),
    ("files-download",               200,     200,       403,     403,     404,     404,     404,     401),
    ("files-upload",                 201,     201,       403,     403,     404,     404,     404,     401),
    ("syscomms",                     OPEN,    OPEN,      OPEN,    OPEN,    4404,    4404,    4404,    4401),
    ("usercomms-chat",               ECHO,    ECHO,      ECHO,    4403,    4404,    4404,    4404,    4401),
    ("chat-then-history-and-files",  JOINED,  JOINED,    JOINED,  4403,    4404,    4404,    4404,    4401),
    ("stop-request",                 STOPPED, STOPPED,   KEEPS_RUNNING, KEEPS_RUNNING, 4404, 4404, 4404, 4401),
    ("syscomms-as-another-user",     4403,    4403,      4403,    4403,    4404,    4404,    4404,    4401),
    ("syscomms-bad-user-id",         4400,    4400,      4400,    4400,    4400,    4400,    4400,    4401),
    ("syscomms-stopped-guild",       4410,    4410,      4410,    4410,    4404,    4404,    4404,    4401),
    # Threads are their user's alone; runs are read like the guild's detail, their messages like the user's history.
    ("thread-list",                  NONE,    LAUNCHERS, NONE,    NONE,    NONE,    B_MEMBERS, NONE,  401),
    ("thread-of-launcher",           404,     200,       404,     404,     404,     404,     404,     401),
    ("thread-rename-of-launcher",    404,     200,       404,     404,     404,     404,     404,     401),
    ("run-list",                     RUNS_A,  RUNS_A,    RUNS_A,  RUNS_A,  RUNS_B,  RUNS_B,  RUNS_B,  401),
    ("run-of-launchers-thread",      MESSAGES, MESSAGES, HIDDEN,  HIDDEN,  404,     404,     404,     401),
    ("cancel-run-of-launcher",       202,     202,       403,     403,     404,     404,     404,     401),
    ("cancel-run-asked-by-member",   202,     202,       202,     403,     404,     404,     404,     401),
    # Budgets: the organisation's admins (a key is capped below admin).
    ("org-a-budget",                 200,     403,       403,     403,     404,     404,     404,     401),
    ("guild-a-budget-set",           200,     403,       403,     403,     404,     404,     404,     401),
    ("post-message",                 ECHO,    ECHO,      ECHO,    403,     404,     404,     404,     401),
    # Schedules: the guild's launcher and the organisation's admins manage them; whoever sees the guild reads them.
    ("schedule-list",                200,     200,       200,     200,     404,     404,     404,     401),
    ("schedule-create",              201,     201,       403,     403,     404,     404,     404,     401),
    ("schedule-pause",               200,     200,       403,     403,     404,     404,     404,     401),
    ("schedule-run-now",             202,     202,       403,     403,     404,     404,     404,     401),
    # Triggers and outbound webhooks: the guild's launcher and the organisation's admins, reads included (secrets
    # are never shown, but URLs and templates are the managers' business).
    ("trigger-list",                 200,     200,       403,     403,     404,     404,     404,     401),
    ("trigger-create",               201,     201,       403,     403,     404,     404,     404,     401),
    ("trigger-rotate-secret",        200,     200,       403,     403,     404,     404,     404,     401),
    ("webhook-list",                 200,     200,       403,     403,     404,     404,     404,     401),
    ("webhook-create",               201,     201,       403,     403,     404,     404,     404,     401),
    ("webhook-deliveries",           200,     200,       403,     403,     404,     404,     404,     401),
    ("webhook-redeliver",            202,     202,       403,     403,     404,     404,     404,     401),
    # External agents: the organisation's admins register and delete them, members send commands, viewers read.
    ("external-agent-list",          EXT_A,   EXT_A,     EXT_A,   EXT_A,   EXT_B,   EXT_B,   EXT_B,   401),
    ("external-agent-register",      201,     403,       403,     403,     404,     404,     404,     401),
    ("external-agent-detail",        200,     200,       200,     200,     404,     404,     404,     401),
    ("external-agent-delete",        204,     403,       403,     403,     404,     404,     404,     401),
    ("external-command-send",        201,     201,       201,     403,     404,     404,     404,     401),
    ("external-command-detail",      200,     200,       200,     200,     404,     404,     404,     401),
    # The live socket (/api/ws): following a topic is reading what it tells, checked as REST reads it.
    ("live-guild-a",                 ACK,     ACK,       ACK,     ACK,     NOT_FOUND, NOT_FOUND, NOT_FOUND, 4401),
    ("live-org-a",                   ACK,     ACK,       ACK,     ACK,     NOT_FOUND, NOT_FOUND, NOT_FOUND, 4401),
    ("live-agent-of-guild-a",        ACK,     ACK,       ACK,     ACK,     NOT_FOUND, NOT_FOUND, NOT_FOUND, 4401),
    ("live-thread-of-launcher",      NOT_FOUND, ACK,     NOT_FOUND, NOT_FOUND, NOT_FOUND, NOT_FOUND, NOT_FOUND, 4401),
    ("live-user-launcher",           NOT_FOUND, ACK,     NOT_FOUND, NOT_FOUND, NOT_FOUND, NOT_FOUND, NOT_FOUND, 4401),
]

# An org-B key with the read scope acts as a viewer there.
READ_KEY = [
    ("B-read-key", "blueprint-list", B_READ),
    ("B-read-key", "blueprint-create-at-home", 403),
    ("B-read-key", "launch-public", 403),
    ("B-read-key", "launch-shared", 403),
    ("B-read-key", "guild-list", GUILD_B),
    ("B-read-key", "guild-detail", 404),
    ("B-read-key", "guild-history", 404),
    ("B-read-key", "syscomms", 4404),
    ("B-read-key", "run-list", RUNS_B),
    ("B-read-key", "cancel-run-of-launcher", 404),
    ("B-read-key", "post-message", 404),
    ("B-read-key", "live-guild-a", NOT_FOUND),
]

# Development (AUTH_DISABLED=1) keeps the seed's open catalog; guild rules (files, history, stop) still hold.
DEVELOPMENT = [
    ("dev-named", "blueprint-list", EVERY_BLUEPRINT),
    ("dev-named", "blueprint-detail-private", 200),
    ("dev-named", "blueprint-update-org", 200),
    ("dev-named", "launch-private", 201),
    ("dev-named", "guild-detail", 200),
    ("dev-named", "history-of-launcher", 403),
    ("dev-named", "guild-history", 403),
    ("dev-named", "files-list", 403),
    ("dev-named", "stop", 403),
    ("dev-named", "syscomms", OPEN),
    ("dev-named", "usercomms-chat", ECHO),
    ("dev-named", "chat-then-history-and-files", JOINED),  # not in the organisation, but joined: its files
    ("dev-named", "stop-request", KEEPS_RUNNING),
    ("dev-unnamed", "blueprint-list", EVERY_BLUEPRINT),
    ("dev-unnamed", "blueprint-detail-private", 200),
    ("dev-unnamed", "guild-list", GUILD_A | GUILD_B),
    ("dev-unnamed", "files-list", 200),
    ("dev-unnamed", "guild-history", 200),
    ("dev-named", "run-list", RUNS_A | RUNS_B),
    ("dev-named", "thread-of-launcher", 404),
    ("dev-named", "cancel-run-of-launcher", 403),
    ("dev-named", "live-guild-a", ACK),
    ("dev-named", "live-thread-of-launcher", NOT_FOUND),
    ("dev-named", "live-user-launcher", NOT_FOUND),
    ("dev-unnamed", "live-guild-a", ACK),
    ("dev-unnamed", "live-user-launcher", NOT_FOUND),
    ("dev-named", "cancel-run-asked-by-member", 403),
    ("dev-named", "org-a-budget", 404),
    ("dev-named", "guild-a-budget-set", 404),
    ("dev-named", "post-message", ECHO),
    ("dev-unnamed", "thread-list", NONE),
]


@dataclass(frozen=True)
class Cell:
    actor: str
    operation: str
    expected: Any

    @property
    def id(self) -> str:
        return f"{self.operation}/{self.actor}"


MATRIX: list[Cell] = [
    *(Cell(actor, row[0], expected) for row in TABLE for actor, expected in zip(COLUMNS, row[1:], strict=True)),
    *(Cell(*row) for row in READ_KEY + DEVELOPMENT),
]

PROBLEM_CODES = {400: "invalid", 401: "not_authenticated", 403: "permission_denied", 404: "not_found"}


def granted(response, expected: Any, problem) -> bool:
    """True when the cell expects success (checked here); else checks the refusal's error body."""
    wanted = 200 if isinstance(expected, frozenset) else expected
    if wanted >= 400:
        problem(response, wanted, PROBLEM_CODES[wanted])
        return False
    assert response.status_code == wanted, response.content
    return True


# --- REST operations: (api, world, who, expected, problem) -> None --------------------------


def blueprint_list(api, w, who, expected, problem):
    response = api.get("/catalog/blueprints/", **w.headers(who))
    if granted(response, expected, problem):
        assert {b["name"] for b in response.json()} == expected


def blueprint_detail(name: str):
    def run(api, w, who, expected, problem):
        blueprint = w.blueprints[name]
        response = api.get(f"/catalog/blueprints/{blueprint.id}", **w.headers(who))
        if granted(response, expected, problem):
            assert response.json()["id"] == blueprint.id
            assert response.json()["name"] == name
    return run


def blueprint_create(organization: str | None):
    def run(api, w, who, expected, problem):
        into = organization or who.home
        body = {"name": "Fresh", "organization_id": into, "exposure": "organization", "spec": factories.ECHO_SPEC}
        response = api.post("/catalog/blueprints/", body, **w.headers(who))
        if granted(response, expected, problem):
            made = Blueprint.objects.get(pk=response.json()["id"])
            assert (made.organization_id, made.author.username) == (into, who.username)
        else:
            assert not Blueprint.objects.filter(name="Fresh").exists()
    return run


def blueprint_update(name: str):
    def run(api, w, who, expected, problem):
        blueprint = w.blueprints[name]
        response = api.patch(f"/catalog/blueprints/{blueprint.id}", {"name": "Renamed"}, **w.headers(who))
        if granted(response, expected, problem):
            assert response.json()["name"] == "Renamed"
        blueprint.refresh_from_db()
        assert blueprint.name == ("Renamed" if expected == 200 else name)
    return run


def blueprint_share(api, w, who, expected, problem):
    blueprint = w.blueprints["A-org"]
    response = api.post(f"/catalog/blueprints/{blueprint.id}/share/", {"organization_id": ORG_C}, **w.headers(who))
    granted(response, expected, problem)
    shared = set(blueprint.shared_with.values_list("pk", flat=True))
    assert shared == ({ORG_C} if expected == 204 else set())


def blueprint_unshare(api, w, who, expected, problem):
    blueprint = w.blueprints["A-shared"]
    response = api.delete(f"/catalog/blueprints/{blueprint.id}/share/{ORG_B}", **w.headers(who))
    granted(response, expected, problem)
    shared = set(blueprint.shared_with.values_list("pk", flat=True))
    assert shared == (set() if expected == 204 else {ORG_B})


def launch(name: str, *, as_user: str | None = None, into_other: bool = False):
    def run(api, w, who, expected, problem):
        blueprint = w.blueprints[name]
        organization = (ORG_B if who.home == ORG_A else ORG_A) if into_other else who.home
        body = {"guild_name": "launched", "user_id": as_user or who.acting_name, "org_id": organization}
        response = api.post(f"/catalog/blueprints/{blueprint.id}/guilds", body, **w.headers(who))
        if granted(response, expected, problem):
            guild = Guild.objects.get(pk=response.json()["id"])
            assert (guild.organization_id, guild.launched_by.username, guild.blueprint_id) == (
                organization, who.username, blueprint.id)
        else:
            assert not Guild.objects.filter(name="launched").exists()
    return run


def guild_list(api, w, who, expected, problem):
    response = api.get("/api/guilds", **w.headers(who))
    if granted(response, expected, problem):
        assert {g["name"] for g in response.json()} == expected


def guild_detail(api, w, who, expected, problem):
    response = api.get(f"/api/guilds/{w.guild.id}", **w.headers(who))
    if granted(response, expected, problem):
        assert (response.json()["id"], response.json()["status"]) == (w.guild.id, GuildStatus.RUNNING)


def history(username: str):
    def run(api, w, who, expected, problem):
        response = api.get(f"/api/guilds/{w.guild.id}/{username}/messages", **w.headers(who))
        if granted(response, expected, problem):
            assert response.json() == []  # nothing was said: the guild never ran
    return run


def guild_history(api, w, who, expected, problem):
    response = api.get(f"/api/guilds/{w.guild.id}/history", **w.headers(who))
    if granted(response, expected, problem):
        body = response.json()
        assert (body["topic"], body["messages"], body["next_before_id"]) == ("default_topic", [], None)  # never ran
        assert {"echo_topic", "user:launcher:notifications"} <= set(body["topics"])


def files_list(api, w, who, expected, problem):
    response = api.get(f"/api/guilds/{w.guild.id}/files/", **w.headers(who))
    if granted(response, expected, problem):
        assert [f["name"] for f in response.json()] == [FILE_NAME]


def files_download(api, w, who, expected, problem):
    response = api.get(f"/api/guilds/{w.guild.id}/files/{FILE_NAME}", **w.headers(who))
    if granted(response, expected, problem):
        assert b"".join(response.streaming_content) == FILE_BYTES


def files_upload(api, w, who, expected, problem):
    upload = SimpleUploadedFile("upload.txt", b"from a cell", content_type="text/plain")
    response = api.post(f"/api/guilds/{w.guild.id}/files/", {"file": upload}, format="multipart", **w.headers(who))
    if granted(response, expected, problem):
        assert GuildFile.objects.get(guild=w.guild, name="upload.txt").uploaded_by == who.username
    else:
        assert not GuildFile.objects.filter(name="upload.txt").exists()


def _threads(w) -> tuple[Thread, Thread]:
    return (factories.thread(w.guild, "launcher", title="launcher's"),
            factories.thread(w.other_guild, "b-member", title="b-member's"))


def thread_list(api, w, who, expected, problem):
    _threads(w)
    response = api.get("/api/threads", **w.headers(who))
    if granted(response, expected, problem):
        assert {t["title"] for t in response.json()} == expected


def thread_of_launcher(api, w, who, expected, problem):
    thread, _ = _threads(w)
    factories.thread_message(thread, "user", "hello")
    detail = api.get(f"/api/threads/{thread.id}", **w.headers(who))
    messages = api.get(f"/api/threads/{thread.id}/messages", **w.headers(who))
    if granted(detail, expected, problem):
        assert detail.json()["title"] == "launcher's"
    if granted(messages, expected, problem):
        assert [m["content"] for m in messages.json()] == ["hello"]


def thread_rename_of_launcher(api, w, who, expected, problem):
    thread, _ = _threads(w)
    response = api.patch(f"/api/threads/{thread.id}", {"title": "renamed"}, **w.headers(who))
    granted(response, expected, problem)
    thread.refresh_from_db()
    assert thread.title == ("renamed" if expected == 200 else "launcher's")


def run_list(api, w, who, expected, problem):
    factories.run(w.guild, agent_id="llm-a")
    factories.run(w.other_guild, agent_id="llm-b")
    response = api.get("/api/runs", **w.headers(who))
    if granted(response, expected, problem):
        assert {r["agent_id"] for r in response.json()["results"]} == expected
        assert response.json()["totals"]["runs"] == len(expected)


def run_of_launchers_thread(api, w, who, expected, problem):
    thread, _ = _threads(w)
    run = factories.run(w.guild, agent_id="llm-a", of=thread)
    factories.thread_message(thread, "user", "hello", run=run)
    response = api.get(f"/api/runs/{run.id}", **w.headers(who))
    if granted(response, 200 if expected in (MESSAGES, HIDDEN) else expected, problem):
        shown = response.json()["messages"]
        assert (shown if expected == HIDDEN else [m["content"] for m in shown]) == (None if expected == HIDDEN else ["hello"])


def cancel_run_of_launcher(api, w, who, expected, problem):
    thread, _ = _threads(w)
    run = factories.run(w.guild, agent_id="llm-a", of=thread, status="running")
    response = api.post(f"/api/runs/{run.id}/cancel", **w.headers(who))
    granted(response, expected, problem)
    assert cancellation.cancel_flagged(run.id) == (expected == 202)


def cancel_run_asked_by_member(api, w, who, expected, problem):
    run = factories.run(w.guild, agent_id="echo", status="queued", trigger="api", requester="a-member")  # no thread
    response = api.post(f"/api/runs/{run.id}/cancel", **w.headers(who))
    granted(response, expected, problem)
    assert cancellation.cancel_flagged(run.id) == (expected == 202)


def org_a_budget(api, w, who, expected, problem):
    response = api.get(f"/api/organizations/{w.guild.organization_id}/budget", **w.headers(who))
    if granted(response, expected, problem):
        assert response.json()["monthly_usd"] is None


def _schedule(w) -> Schedule:
    return Schedule.objects.create(guild=w.guild, organization_id=w.guild.organization_id, cron="0 9 * * *",
                                   agent_id=w.guild.spec["agents"][0]["id"], payload={"text": "scheduled"},
                                   next_run_at=timezone.now() + timedelta(days=1))


def schedule_list(api, w, who, expected, problem):
    made = _schedule(w)
    response = api.get(f"/api/guilds/{w.guild.pk}/schedules", **w.headers(who))
    if granted(response, expected, problem):
        assert [s["id"] for s in response.json()] == [made.pk]
    detail = api.get(f"/api/schedules/{made.pk}", **w.headers(who))
    assert detail.status_code == expected, detail.content


def schedule_create(api, w, who, expected, problem):
    response = api.post(f"/api/guilds/{w.guild.pk}/schedules", {"cron": "0 9 * * *", "agent": "EchoAgent",
                                                                "payload": {"text": "hi"}}, format="json",
                        **w.headers(who))
    granted(response, expected, problem)
    assert Schedule.objects.filter(guild=w.guild).exists() == (expected == 201)


def schedule_pause(api, w, who, expected, problem):
    made = _schedule(w)
    response = api.patch(f"/api/schedules/{made.pk}", {"enabled": False}, format="json", **w.headers(who))
    granted(response, expected, problem)
    made.refresh_from_db()
    assert made.enabled is (expected != 200)


def _trigger(w) -> Trigger:
    made = Trigger(guild=w.guild, organization_id=w.guild.organization_id, agent_id=w.guild.spec["agents"][0]["id"])
    triggers.trigger_create(trigger=made)
    return made


def trigger_list(api, w, who, expected, problem):
    made = _trigger(w)
    response = api.get(f"/api/guilds/{w.guild.pk}/triggers", **w.headers(who))
    if granted(response, expected, problem):
        assert [t["id"] for t in response.json()] == [made.pk]
    detail = api.get(f"/api/triggers/{made.pk}", **w.headers(who))
    assert detail.status_code == expected, detail.content


def trigger_create(api, w, who, expected, problem):
    response = api.post(f"/api/guilds/{w.guild.pk}/triggers", {"agent": "EchoAgent"}, format="json",
                        **w.headers(who))
    granted(response, expected, problem)
    assert Trigger.objects.filter(guild=w.guild).exists() == (expected == 201)


def trigger_rotate_secret(api, w, who, expected, problem):
    made = _trigger(w)
    sealed = made.sealed_secret
    response = api.post(f"/api/triggers/{made.pk}/rotate-secret", **w.headers(who))
    granted(response, expected, problem)
    made.refresh_from_db()
    assert (made.sealed_secret != sealed) is (expected == 200)


def _webhook(w) -> Webhook:
    made = Webhook(guild=w.guild, organization_id=w.guild.organization_id, url="http://127.0.0.1:9/hook",
                   events=["run.succeeded"])
    webhooks.webhook_create(webhook=made)
    return made


def webhook_list(api, w, who, expected, problem):
    made = _webhook(w)
    response = api.get(f"/api/guilds/{w.guild.pk}/webhooks", **w.headers(who))
    if granted(response, expected, problem):
        assert [h["id"] for h in response.json()] == [made.pk]
    detail = api.get(f"/api/webhooks/{made.pk}", **w.headers(who))
    assert detail.status_code == expected, detail.content


def webhook_create(api, w, who, expected, problem):
    response = api.post(f"/api/guilds/{w.guild.pk}/webhooks", {"url": "http://127.0.0.1:9/hook",
                                                               "events": ["run.failed"]}, format="json",
                        **w.headers(who))
    granted(response, expected, problem)
    assert Webhook.objects.filter(guild=w.guild).exists() == (expected == 201)


def _dead_delivery(w) -> WebhookDelivery:
    return WebhookDelivery.objects.create(webhook=_webhook(w), event_type="run.succeeded", event_id="msg_x",
                                          subject_id="run-x", body="{}", status=DeliveryStatus.DEAD, attempts=8)


def webhook_deliveries(api, w, who, expected, problem):
    made = _dead_delivery(w)
    response = api.get(f"/api/webhooks/{made.webhook_id}/deliveries", **w.headers(who))
    if granted(response, expected, problem):
        assert [d["id"] for d in response.json()] == [made.pk]


def webhook_redeliver(api, w, who, expected, problem):
    made = _dead_delivery(w)
    response = api.post(f"/api/webhook-deliveries/{made.pk}/redeliver", **w.headers(who))
    granted(response, expected, problem)
    assert WebhookDelivery.objects.filter(redelivery_of=made).exists() == (expected == 202)


def guild_a_budget_set(api, w, who, expected, problem):
    response = api.put(f"/api/guilds/{w.guild.pk}/budget", {"monthly_usd": "3"}, **w.headers(who))
    granted(response, expected, problem)
    assert Budget.objects.filter(guild=w.guild).exists() == (expected == 200)


def _external_agents(w) -> ExternalAgent:
    """Org A's external agent `ext-a` (and org B's `ext-b`), registered by their admins."""
    from guildsite.accounts.models import Organization

    made, _ = registry.external_agent_register(organization=Organization.objects.get(pk=ORG_A),
                                               created_by=factories.user("a-admin"), name="ext-a")
    registry.external_agent_register(organization=Organization.objects.get(pk=ORG_B),
                                     created_by=factories.user("b-admin"), name="ext-b")
    return made


def external_agent_list(api, w, who, expected, problem):
    _external_agents(w)
    response = api.get("/api/external-agents", **w.headers(who))
    if granted(response, expected, problem):
        assert {agent["name"] for agent in response.json()} == expected


def external_agent_register(api, w, who, expected, problem):
    response = api.post("/api/external-agents", {"organization_id": ORG_A, "name": "new-one"}, format="json",
                        **w.headers(who))
    if granted(response, expected, problem):
        assert response.json()["key"].startswith("gsk_")
    assert ExternalAgent.objects.filter(name="new-one").exists() == (expected == 201)


def external_agent_detail(api, w, who, expected, problem):
    made = _external_agents(w)
    response = api.get(f"/api/external-agents/{made.pk}", **w.headers(who))
    if granted(response, expected, problem):
        assert "key" not in response.json()


def external_agent_delete(api, w, who, expected, problem):
    made = _external_agents(w)
    response = api.delete(f"/api/external-agents/{made.pk}", **w.headers(who))
    granted(response, expected, problem)
    assert ExternalAgent.objects.filter(pk=made.pk).exists() == (expected != 204)


def external_command_send(api, w, who, expected, problem):
    made = _external_agents(w)
    response = api.post(f"/api/external-agents/{made.pk}/commands", {"type": "run", "content": "uname"},
                        format="json", **w.headers(who))
    granted(response, expected, problem)
    assert made.commands.exists() == (expected == 201)


def external_command_detail(api, w, who, expected, problem):
    made = _external_agents(w)
    command = commands.command_create(agent=made, created_by=None, type="run", content="uname", parameters={},
                                      timeout_s=60)
    response = api.get(f"/api/commands/{command.pk}", **w.headers(who))
    if granted(response, expected, problem):
        assert response.json()["state"] == "queued"


REST = {
    "external-agent-list": external_agent_list,
    "external-agent-register": external_agent_register,
    "external-agent-detail": external_agent_detail,
    "external-agent-delete": external_agent_delete,
    "external-command-send": external_command_send,
    "external-command-detail": external_command_detail,
    "trigger-list": trigger_list,
    "trigger-create": trigger_create,
    "trigger-rotate-secret": trigger_rotate_secret,
    "webhook-list": webhook_list,
    "webhook-create": webhook_create,
    "webhook-deliveries": webhook_deliveries,
    "webhook-redeliver": webhook_redeliver,
    "schedule-list": schedule_list,
    "schedule-create": schedule_create,
    "schedule-pause": schedule_pause,
    "org-a-budget": org_a_budget,
    "guild-a-budget-set": guild_a_budget_set,
    "cancel-run-of-launcher": cancel_run_of_launcher,
    "cancel-run-asked-by-member": cancel_run_asked_by_member,
    "thread-list": thread_list,
    "thread-of-launcher": thread_of_launcher,
    "thread-rename-of-launcher": thread_rename_of_launcher,
    "run-list": run_list,
    "run-of-launchers-thread": run_of_launchers_thread,
    "blueprint-list": blueprint_list,
    "blueprint-detail-private": blueprint_detail("A-private"),
    "blueprint-detail-org": blueprint_detail("A-org"),
    "blueprint-detail-shared": blueprint_detail("A-shared"),
    "blueprint-detail-public": blueprint_detail("A-public"),
    "blueprint-create-in-org-a": blueprint_create(ORG_A),
    "blueprint-create-at-home": blueprint_create(None),
    "blueprint-update-org": blueprint_update("A-org"),
    "blueprint-update-shared": blueprint_update("A-shared"),
    "blueprint-share-org": blueprint_share,
    "blueprint-unshare-shared": blueprint_unshare,
    "launch-private": launch("A-private"),
    "launch-org": launch("A-org"),
    "launch-shared": launch("A-shared"),
    "launch-public": launch("A-public"),
    "launch-as-another-user": launch("A-public", as_user="someone-else"),
    "launch-into-another-org": launch("A-public", into_other=True),
    "guild-list": guild_list,
    "guild-detail": guild_detail,
    "history-of-launcher": history("launcher"),
    "history-of-one-never-joined": history("a-member"),
    "guild-history": guild_history,
    "files-list": files_list,
    "files-download": files_download,
    "files-upload": files_upload,
}


# --- control: stop and relaunch reach the runtime (its own database threads) ---------------------


def stop(api, w, who, expected, problem, launched):
    response = api.post(f"/api/guilds/{w.guild.id}/stop", {}, **w.headers(who))
    if granted(response, expected, problem):
        assert response.json()["status"] == GuildStatus.STOPPED
    w.guild.refresh_from_db()
    assert w.guild.status == (GuildStatus.STOPPED if expected == 200 else GuildStatus.RUNNING)


def relaunch(api, w, who, expected, problem, launched):
    launched.append(w.guild.id)
    response = api.post(f"/api/guilds/{w.guild.id}/relaunch", **w.headers(who))
    if granted(response, expected, problem):
        assert response.json() == {"is_relaunching": True}  # nothing ran it: it starts now
    assert engine_named("inprocess").is_guild_running(w.guild.id) is (expected == 200)


def schedule_run_now(api, w, who, expected, problem, launched):
    made = _schedule(w)
    launched.append(w.guild.id)  # a guild resumed to take the firing runs on the in-process engine
    response = api.post(f"/api/schedules/{made.pk}/run", **w.headers(who))
    if granted(response, expected, problem):
        assert Run.objects.filter(pk=response.json()["run_id"], trigger="schedule").exists()
    assert Run.objects.filter(guild=w.guild, trigger="schedule").exists() == (expected == 202)


CONTROL = {"stop": stop, "relaunch": relaunch, "schedule-run-now": schedule_run_now}


# --- sockets: async (world, who, expected) -> None ----------------------------------------


def _status(guild_id: str) -> str:
    return Guild.objects.get(pk=guild_id).status


async def syscomms(w, who, expected, *, user_id: str | None = None) -> Socket | None:
    """Connect; a refusal is checked here (frame, then close code) and None returned."""
    return await _connect(f"/ws/guilds/{w.guild.id}/syscomms/{user_id or who.acting_name}{w.query(who)}", expected)


async def _connect(path: str, expected: Any) -> Socket | None:
    socket = await Socket(path).connect()
    if isinstance(expected, int):
        frame, code = await socket.refusal()
        assert frame["format"] == ERROR
        assert frame["payload"]["error_type"] == REFUSAL_TYPES[expected]
        assert code == expected
        await socket.communicator.disconnect()
        return None
    return socket


REFUSAL_TYPES = {4400: "INVALID_USER", 4401: "UNAUTHENTICATED", 4403: "FORBIDDEN", 4404: "NOT_FOUND",
                 4410: "GUILD_STOPPED"}


async def syscomms_connect(w, who, expected):
    socket = await syscomms(w, who, expected)
    if socket is not None:
        async with socket:
            first = await socket.receive()
            assert first["format"] == REPORT
            assert first["payload"]["guild_status"] == GuildStatus.RUNNING


async def usercomms_chat(w, who, expected):
    socket = await _connect(f"/ws/guilds/{w.guild.id}/usercomms/{who.acting_name}/Tester{w.query(who)}", expected)
    if socket is not None:
        async with socket:
            await socket.send({"format": "text", "payload": {"text": f"hello from {who.label}"}})
            echo = await socket.until(lambda f: f["payload"].get("text") == f"Echo: hello from {who.label}",
                                      what="the echo")
            assert echo["sender"]["name"] == "EchoAgent"


async def chat_then_history_and_files(w, who, expected):
    await usercomms_chat(w, who, expected)
    if expected != JOINED:
        return

    def read() -> tuple:
        api = APIClient()
        return (api.get(f"/api/guilds/{w.guild.id}/{who.acting_name}/messages", **w.headers(who)),
                api.get(f"/api/guilds/{w.guild.id}/files/", **w.headers(who)))

    history, listing = await sync_to_async(read)()
    assert history.status_code == 200, history.content
    assert f"Echo: hello from {who.label}" in [m["payload"].get("text") for m in history.json()]
    assert (listing.status_code, listing.json()) == (200, [])


async def stop_request(w, who, expected):
    socket = await syscomms(w, who, expected)
    if socket is None:
        assert await database_sync_to_async(_status)(w.guild.id) == GuildStatus.RUNNING
        return
    async with socket:
        await socket.send({"format": "stopGuildRequest", "payload": {"guild_id": w.guild.id}})
        if expected == STOPPED:
            await socket.until(lambda f: f["format"] == "guildStatus" and f["payload"]["status"] == "STOPPED",
                               what="guildStatus STOPPED")
            assert await database_sync_to_async(_status)(w.guild.id) == GuildStatus.STOPPED
            return
        refused = await socket.until(lambda f: f["format"] == ERROR, what="an error frame")
        assert refused["payload"]["error_type"] == "FORBIDDEN"
        # The guild still answers, and is still running.
        await socket.send({"format": "participantsRequest", "payload": {"guild_id": w.guild.id}})
        await socket.until(lambda f: f["format"] == "Participants", what="Participants")
        assert await database_sync_to_async(_status)(w.guild.id) == GuildStatus.RUNNING


async def syscomms_as_another_user(w, who, expected):
    other = "a-member" if who.username != "a-member" else "launcher"
    assert await syscomms(w, who, expected, user_id=other) is None


async def post_message(w, who, expected):
    """POST /api/guilds/{id}/messages; ECHO: the echo reaches the sender's history (what their sockets show)."""
    def send():
        return APIClient().post(f"/api/guilds/{w.guild.id}/messages", {"format": "text", "payload": {
            "text": f"posted by {who.label}"}}, format="json", **w.headers(who))

    def echoed() -> bool:
        response = APIClient().get(f"/api/guilds/{w.guild.id}/{who.acting_name}/messages", **w.headers(who))
        return f"Echo: posted by {who.label}" in [m["payload"].get("text") for m in response.json()]

    response = await sync_to_async(send)()
    if expected != ECHO:
        assert (response.status_code, response.json()["code"]) == (expected, PROBLEM_CODES[expected])
        return
    assert response.status_code == 202, response.content
    deadline = time.monotonic() + 10
    while not await sync_to_async(echoed)():
        assert time.monotonic() < deadline, "no echo of the posted message within 10 s"
        await asyncio.sleep(0.02)


async def syscomms_bad_user_id(w, who, expected):
    assert await syscomms(w, who, expected, user_id="not*a*user") is None


async def syscomms_stopped_guild(w, who, expected):
    await database_sync_to_async(guild_stop)(guild_id=w.guild.id, user_id="launcher")
    assert await syscomms(w, who, expected) is None


SOCKETS = {
    "syscomms": syscomms_connect,
    "usercomms-chat": usercomms_chat,
    "chat-then-history-and-files": chat_then_history_and_files,
    "stop-request": stop_request,
    "syscomms-as-another-user": syscomms_as_another_user,
    "syscomms-bad-user-id": syscomms_bad_user_id,
    "syscomms-stopped-guild": syscomms_stopped_guild,
    "post-message": post_message,
}


# --- the live socket: async (world, who, expected) -> None, on the REST world (nothing need run) ------------


def live_topic(topic_of):
    async def cell(w, who, expected):
        query = w.query(who) or (f"?user_id={who.username}" if who.development and who.username else "")
        socket = await Socket(f"/api/ws{query}").connect()
        if isinstance(expected, int):
            frame, code = await socket.refusal()
            assert (code, frame["type"], frame["data"]["code"]) == (expected, "error", "UNAUTHENTICATED")
            return
        topic = await sync_to_async(topic_of)(w)
        async with socket:
            await socket.send({"v": 1, "id": "r1", "topic": "system", "type": "subscribe", "data": {"topics": [topic]}})
            answer = await socket.until(lambda f: f["data"].get("request_id") == "r1", what="the answer")
            assert answer["data"]["topic"] == topic
            assert (answer["type"] if expected == ACK else answer["data"].get("reason")) == expected, answer
    return cell


def _launchers_thread_topic(w) -> str:
    return f"thread:{_threads(w)[0].id}"


LIVE = {
    "live-guild-a": live_topic(lambda w: f"guild:{w.guild.id}"),
    "live-org-a": live_topic(lambda w: f"org:{ORG_A}"),
    "live-agent-of-guild-a": live_topic(lambda w: f"agent:{w.guild.id}:{w.guild.spec['agents'][0]['id']}"),
    "live-thread-of-launcher": live_topic(_launchers_thread_topic),
    "live-user-launcher": live_topic(lambda w: "user:launcher"),
}


def cells(operations: dict) -> list:
    return [pytest.param(cell, id=cell.id) for cell in MATRIX if cell.operation in operations]


def _authentication(settings, who: Who) -> None:
    settings.AUTH_DISABLED = who.development


def test_every_cell_has_an_operation_and_an_actor():
    assert {cell.operation for cell in MATRIX} == set(REST) | set(CONTROL) | set(SOCKETS) | set(LIVE)
    assert {cell.actor for cell in MATRIX} <= set(ACTORS)
    assert len({cell.id for cell in MATRIX}) == len(MATRIX)


@pytest.mark.django_db
@pytest.mark.parametrize("cell", cells(REST))
def test_rest(cell, api, problem, settings, world):
    who = ACTORS[cell.actor]
    _authentication(settings, who)
    REST[cell.operation](api, world, who, cell.expected, problem)


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("cell", cells(CONTROL))
def test_control(cell, api, problem, settings, world, forget_guilds):
    who = ACTORS[cell.actor]
    _authentication(settings, who)
    CONTROL[cell.operation](api, world, who, cell.expected, problem, forget_guilds)


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("cell", cells(SOCKETS))
async def test_socket(cell, settings, socket_world):
    who = ACTORS[cell.actor]
    _authentication(settings, who)
    await SOCKETS[cell.operation](socket_world, who, cell.expected)


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("cell", cells(LIVE))
async def test_live_socket(cell, settings, world):
    who = ACTORS[cell.actor]
    _authentication(settings, who)
    await LIVE[cell.operation](world, who, cell.expected)
