"""Who may open the guild sockets: credentials, the documented order of refusals, Origin, the per-user cap."""

from __future__ import annotations

import json

import pytest
from channels.testing import WebsocketCommunicator
from django.test import Client

from guilds.models import Guild, GuildMember, GuildStatus
from guildsite.asgi import application
from tests import factories
from tests.runtime.conftest import celery_workers, echo_spec, rig  # noqa: F401 - shared fixtures

pytestmark = pytest.mark.django_db(transaction=True)

ERROR = "rustic_ai.core.agents.commons.message_formats.ErrorMessage"


@pytest.fixture
def auth_on(settings):
    settings.AUTH_DISABLED = False


@pytest.fixture
def guild(rig):  # noqa: F811 - pytest fixture injection
    """A running guild of testorg456 launched by testuser123, with a viewer and an outsider around."""
    factories.organization("testorg456", testuser123="member", watcher="viewer", colleague="member")
    factories.organization("other-org", outsider="admin")
    made = rig.create(echo_spec())
    rig.wait_status(made, GuildStatus.RUNNING)
    for username in ("testuser123", "watcher", "colleague", "outsider"):
        TOKENS[username] = factories.token(username)
    return made


TOKENS: dict[str, str] = {}  # made before each test's event loop runs (minting reads the database)


def socket(path: str, *, token_of: str | None = None, headers: list[tuple[bytes, bytes]] | None = None,
           query: str = "") -> WebsocketCommunicator:
    if token_of is not None:
        query = f"?token={TOKENS[token_of]}{query}"
    return WebsocketCommunicator(application, f"{path}{query}", headers=headers or [])


async def refusal(communicator: WebsocketCommunicator) -> tuple[dict, int]:
    """The error frame of a refused socket and its close code (it is accepted first, so both arrive)."""
    connected, _ = await communicator.connect(timeout=10)
    assert connected
    frame = json.loads(await communicator.receive_from(timeout=10))
    assert frame["format"] == ERROR
    closed = await communicator.receive_output(timeout=10)
    assert closed["type"] == "websocket.close"
    return frame["payload"], closed["code"]


async def opened(communicator: WebsocketCommunicator, *, keep: bool = False) -> dict:
    """The first frame of a socket that was let in; closed again unless `keep`."""
    connected, _ = await communicator.connect(timeout=10)
    assert connected
    frame = json.loads(await communicator.receive_from(timeout=10))
    assert frame["format"] != ERROR, frame
    if not keep:
        await communicator.disconnect()
    return frame


def sys_path(guild_id: str, user: str = "testuser123") -> str:
    return f"/ws/guilds/{guild_id}/syscomms/{user}"


def user_path(guild_id: str, user: str = "testuser123") -> str:
    return f"/ws/guilds/{guild_id}/usercomms/{user}/Test%20User"


@pytest.mark.usefixtures("auth_on")
@pytest.mark.parametrize(("case", "expected_code", "error_type"), [
    ("no credentials", 4401, "UNAUTHENTICATED"),
    ("a token that is not one", 4401, "UNAUTHENTICATED"),
    ("a bad user id, even for an unknown guild", 4400, "INVALID_USER"),
    ("an unknown guild", 4404, "NOT_FOUND"),
    ("another organisation's guild", 4404, "NOT_FOUND"),
    ("someone else's user id", 4403, "FORBIDDEN"),
])
async def test_refusals_come_in_the_documented_order(guild, case, expected_code, error_type):
    path, token_of, query = {
        "no credentials": (user_path(guild.id), None, ""),
        "a token that is not one": (user_path(guild.id), None, "?token=abc.def.ghi"),
        "a bad user id, even for an unknown guild": (user_path("nope", "bad:id"), "testuser123", ""),
        "an unknown guild": (user_path("nope"), "testuser123", ""),
        "another organisation's guild": (user_path(guild.id, "outsider"), "outsider", ""),
        "someone else's user id": (user_path(guild.id, "colleague"), "testuser123", ""),
    }[case]
    payload, code = await refusal(socket(path, token_of=token_of, query=query))
    assert (code, payload["error_type"]) == (expected_code, error_type)


@pytest.mark.usefixtures("auth_on")
async def test_a_viewer_watches_the_system_socket_but_may_not_chat(guild):
    first = await opened(socket(sys_path(guild.id, "watcher"), token_of="watcher"))
    assert first["format"].endswith("AgentsHealthReport")
    payload, code = await refusal(socket(user_path(guild.id, "watcher"), token_of="watcher"))
    assert code == 4403
    assert "viewers" in payload["error_message"]


@pytest.mark.usefixtures("auth_on")
async def test_joining_over_the_user_socket_makes_a_member_who_can_chat(guild):
    communicator = socket(user_path(guild.id, "colleague"), token_of="colleague")
    connected, _ = await communicator.connect(timeout=10)
    assert connected
    await communicator.send_to(text_data=json.dumps({"format": "text", "payload": {"text": "hi"}, "id": "m1"}))
    while True:
        frame = json.loads(await communicator.receive_from(timeout=10))
        if frame["payload"].get("text") == "Echo: hi":
            break
    await communicator.disconnect()
    assert await GuildMember.objects.filter(guild=guild, user__username="colleague").aexists()


@pytest.mark.usefixtures("auth_on")
async def test_a_stopped_guild_is_4410_after_the_identity_checks(guild):
    await Guild.objects.filter(pk=guild.pk).aupdate(status=GuildStatus.STOPPED)
    payload, code = await refusal(socket(sys_path(guild.id), token_of="testuser123"))
    assert (code, payload["error_type"]) == (4410, "GUILD_STOPPED")
    payload, code = await refusal(socket(sys_path(guild.id, "outsider"), token_of="outsider"))
    assert (code, payload["error_type"]) == (4404, "NOT_FOUND")  # another organisation still learns nothing


@pytest.mark.usefixtures("auth_on")
async def test_a_program_may_send_an_authorization_header_and_no_origin(guild):
    token = TOKENS["testuser123"]
    await opened(socket(sys_path(guild.id), headers=[(b"authorization", f"Bearer {token}".encode())]))
    payload, code = await refusal(socket(sys_path(guild.id), headers=[(b"authorization", b"Basic dXNlcjpwYXNz")]))
    assert code == 4401
    assert "Bearer" in payload["error_message"]


def session_cookie(username: str) -> bytes:
    browser = Client()
    browser.force_login(factories.user(username))
    return f"sessionid={browser.cookies['sessionid'].value}".encode()


@pytest.mark.usefixtures("auth_on")
async def test_the_session_cookie_works_only_from_the_sites_own_pages(guild):
    from channels.db import database_sync_to_async

    cookie = await database_sync_to_async(session_cookie)("testuser123")
    same_site = [(b"host", b"testserver"), (b"origin", b"http://testserver"), (b"cookie", cookie)]
    await opened(socket(sys_path(guild.id), headers=same_site))
    # Cross-site WebSocket hijacking: another site's page opens a socket and the browser adds the cookie.
    for origin in (b"http://evil.example", b"http://testserver.evil.example", b"null"):
        payload, code = await refusal(socket(sys_path(guild.id), headers=[
            (b"host", b"testserver"), (b"origin", origin), (b"cookie", cookie)]))
        assert code == 4401
        assert "origin" in payload["error_message"]
    payload, code = await refusal(socket(sys_path(guild.id), headers=[(b"host", b"testserver"), (b"cookie", cookie)]))
    assert code == 4401


@pytest.mark.usefixtures("auth_on")
async def test_a_site_served_over_https_takes_the_session_only_from_its_https_pages(guild, settings):
    from channels.db import database_sync_to_async

    settings.GUILDSITE_HTTPS = True
    cookie = await database_sync_to_async(session_cookie)("testuser123")
    # A page at http://<the site's host> is whoever sits on the network path, not the site.
    payload, code = await refusal(socket(sys_path(guild.id), headers=[
        (b"host", b"testserver"), (b"origin", b"http://testserver"), (b"cookie", cookie)]))
    assert code == 4401
    assert "http://testserver" in payload["error_message"]
    await opened(socket(sys_path(guild.id), headers=[
        (b"host", b"testserver"), (b"origin", b"https://testserver"), (b"cookie", cookie)]))


@pytest.mark.usefixtures("auth_on")
async def test_a_user_has_at_most_the_configured_number_of_sockets(guild, settings):
    settings.GUILDSITE_WS_MAX_PER_USER = 2
    first = socket(sys_path(guild.id), token_of="testuser123")
    second = socket(sys_path(guild.id), token_of="testuser123")
    await opened(first, keep=True)
    await opened(second, keep=True)
    payload, code = await refusal(socket(sys_path(guild.id), token_of="testuser123"))
    assert (code, payload["error_type"]) == (1008, "TOO_MANY_SOCKETS")
    # Another user is not affected, and closing a socket frees its place.
    await opened(socket(sys_path(guild.id, "colleague"), token_of="colleague"))
    await first.disconnect()
    await opened(socket(sys_path(guild.id), token_of="testuser123"))
    await second.disconnect()


async def test_development_trusts_the_user_in_the_url_and_makes_them_on_first_use(guild):
    from django.contrib.auth import get_user_model

    communicator = socket(user_path(guild.id, "newcomer"))
    connected, _ = await communicator.connect(timeout=10)
    assert connected
    await communicator.send_to(text_data=json.dumps({"format": "text", "payload": {"text": "dev"}}))
    while json.loads(await communicator.receive_from(timeout=10))["payload"].get("text") != "Echo: dev":
        pass
    await communicator.disconnect()
    assert await get_user_model().objects.filter(username="newcomer").aexists()
    assert await GuildMember.objects.filter(guild=guild, user__username="newcomer").aexists()


async def test_development_still_refuses_a_bad_token(guild):
    payload, code = await refusal(socket(sys_path(guild.id), query="?token=expired.or.forged"))
    assert (code, payload["error_type"]) == (4401, "UNAUTHENTICATED")


async def closed_later(communicator: WebsocketCommunicator, timeout: float = 10) -> tuple[dict, int]:
    """Read an open socket until the server closes it: the last error frame and the close code."""
    error: dict = {}
    while True:
        output = await communicator.receive_output(timeout=timeout)
        if output["type"] == "websocket.close":
            return error, output["code"]
        frame = json.loads(output["text"])
        if frame["format"] == ERROR:
            error = frame["payload"]


@pytest.fixture
def short_token(guild):
    from datetime import timedelta

    # A JWT's exp is whole seconds (cut down): a 1 s token could have expired before the socket opened.
    return factories.token("colleague", lifetime=timedelta(seconds=3))


@pytest.mark.usefixtures("auth_on")
async def test_a_socket_is_closed_with_4401_when_its_token_expires(guild, short_token):
    communicator = socket(sys_path(guild.id, "colleague"), query=f"?token={short_token}")
    await opened(communicator, keep=True)
    payload, code = await closed_later(communicator)
    assert (code, payload["error_type"]) == (4401, "UNAUTHENTICATED")
    assert "expired" in payload["error_message"]


@pytest.fixture
def recheck_often(settings):
    settings.GUILDSITE_WS_RECHECK_SECONDS = 0.1


@pytest.mark.usefixtures("auth_on", "recheck_often")
@pytest.mark.parametrize(("change", "expected"), [
    ("removed from the organisation", (4404, "NOT_FOUND")),
    ("demoted to viewer", (4403, "FORBIDDEN")),
    ("password changed", (4401, "UNAUTHENTICATED")),
    ("account disabled", (4401, "UNAUTHENTICATED")),
])
async def test_an_open_socket_loses_what_its_user_lost(guild, change, expected):
    from channels.db import database_sync_to_async

    communicator = socket(user_path(guild.id, "colleague"), token_of="colleague")
    connected, _ = await communicator.connect(timeout=10)
    assert connected
    await database_sync_to_async(take_away)("colleague", change)
    payload, code = await closed_later(communicator)
    assert (code, payload["error_type"]) == expected


@pytest.mark.usefixtures("auth_on", "recheck_often")
async def test_a_socket_opened_with_a_sign_ins_token_closes_when_that_sign_in_logs_out(guild):
    from channels.db import database_sync_to_async

    from guildsite.accounts import services

    pair = await database_sync_to_async(lambda: services.token_pair_issue(user=factories.user("colleague")))()
    communicator = socket(user_path(guild.id, "colleague"), query=f"?token={pair['access']}")
    connected, _ = await communicator.connect(timeout=10)
    assert connected
    await database_sync_to_async(services.refresh_token_revoke)(refresh=pair["refresh"])
    payload, code = await closed_later(communicator)
    assert (code, payload["error_type"]) == (4401, "UNAUTHENTICATED")
    assert "logged out" in payload["error_message"]


def take_away(username: str, change: str) -> None:
    from guildsite.accounts.models import Membership

    account = factories.user(username)
    if change == "removed from the organisation":
        Membership.objects.filter(user=account, organization_id="testorg456").delete()
    elif change == "demoted to viewer":
        Membership.objects.filter(user=account, organization_id="testorg456").update(role="viewer")
    elif change == "password changed":
        account.set_password("a brand new password")
        account.save()
    else:
        account.is_active = False
        account.save()


@pytest.mark.usefixtures("auth_on")
async def test_a_stop_request_is_judged_by_the_rights_of_now(guild):
    from channels.db import database_sync_to_async

    communicator = socket(sys_path(guild.id), token_of="testuser123")  # the launcher
    await opened(communicator, keep=True)
    await database_sync_to_async(take_away)("testuser123", "removed from the organisation")
    await communicator.send_to(text_data=json.dumps({"format": "stopGuildRequest", "payload": {}}))
    payload, code = await closed_later(communicator)
    assert (code, payload["error_type"]) == (4404, "NOT_FOUND")
    assert (await Guild.objects.aget(pk=guild.pk)).status == GuildStatus.RUNNING
