"""Seed 000's whole flow against a real server over real sockets, every request and frame as the seed writes them.

Twice: in development (AUTH_DISABLED=1) exactly as the seed's client sends it, and with authentication
on, where the same client adds a bearer token to its requests and `?token=` (or an Authorization header)
to its sockets.
"""

from __future__ import annotations

import json
import time
import uuid
from dataclasses import dataclass
from urllib.parse import quote

import pytest
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

REPORT = "rustic_ai.core.guild.agent_ext.mixins.health.AgentsHealthReport"
ECHO = "rustic_ai.core.agents.testutils.echo_agent.EchoAgent"


def receive_until(ws, predicate, timeout=10.0, seen=None):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            frame = json.loads(ws.recv(timeout=max(0.01, deadline - time.monotonic())))
        except TimeoutError:
            break
        if seen is not None:
            seen.append(frame)
        if predicate(frame):
            return frame
    raise AssertionError("no matching frame in time" + (f"; saw {[f.get('format') for f in seen]}" if seen else ""))


def multipart(field: str, filename: str, content: bytes, extra: dict[str, str]) -> tuple[bytes, str]:
    boundary = uuid.uuid4().hex
    parts = [f'--{boundary}\r\nContent-Disposition: form-data; name="{k}"\r\n\r\n{v}\r\n'.encode()
             for k, v in extra.items()]
    parts.append(f'--{boundary}\r\nContent-Disposition: form-data; name="{field}"; filename="{filename}"\r\n'
                 f"Content-Type: application/pdf\r\n\r\n".encode() + content + b"\r\n")
    return b"".join(parts) + f"--{boundary}--\r\n".encode(), f"multipart/form-data; boundary={boundary}"


@dataclass
class Client:
    """The seed's client, as it talks to one server: without credentials, or with a token."""

    server: object
    token: str | None = None

    def request(self, method: str, path: str, body=None, *, headers: dict | None = None, raw: bytes | None = None):
        auth = {"Authorization": f"Bearer {self.token}"} if self.token else {}
        return self.server.request(method, path, body, headers={**auth, **(headers or {})}, raw=raw)

    def socket(self, path: str, *, header: bool = False):
        """A guild socket; with a token, in `?token=` or (header=True) an Authorization header."""
        if self.token and header:
            return connect(f"{self.server.ws_base}{path}", additional_headers={"Authorization": f"Bearer {self.token}"})
        query = f"?token={self.token}" if self.token else ""
        return connect(f"{self.server.ws_base}{path}{query}")


def sign_in(server, username: str, password: str) -> str:
    status, tokens = server.request("POST", "/api/auth/token", {"username": username, "password": password})
    assert status == 200, tokens
    return tokens["access"]


def test_seed_000_flow_end_to_end(guildsite_server):
    seed_flow(Client(guildsite_server), mallory_headers={"X-User-Id": "mallory"}, owner_headers={"X-User-Id": "testuser123"},
              download_query="?user_id=testuser123", shown_name="Test User")  # the URL's name, as the seed has it


def test_seed_000_flow_end_to_end_with_authentication(authenticated_server):
    server = authenticated_server
    status, body = server.request("GET", "/api/guilds")
    assert status == 401, body
    client = Client(server, token=sign_in(server, "testuser123", "seed-password-123"))
    mallory = sign_in(server, "mallory", "mallory-password-123")
    # Signed in, the name others see is the account's (no full name here: its user id), not the URL's.
    seed_flow(client, mallory_headers={"Authorization": f"Bearer {mallory}"}, owner_headers={}, download_query="",
              shown_name="testuser123")


def seed_flow(client: Client, *, mallory_headers: dict, owner_headers: dict, download_query: str,
              shown_name: str) -> None:
    server = client.server
    # Phase 1.1: register the agent (201 on a fresh site, 409 if it is already there).
    agent = {"qualified_class_name": ECHO, "description": "Agent that echoes messages back to the sender",
             "properties_schema": {}, "dependencies": []}
    status, _ = client.request("POST", "/catalog/agents", agent)
    assert status == 201
    status, body = client.request("POST", "/catalog/agents", agent)
    assert status == 409
    assert ECHO in body["detail"]
    # Phase 1.2 and 1.3.
    status, category = client.request("POST", "/catalog/categories/",
                                      {"name": "Testing", "description": "Category for integration testing blueprints"})
    assert status == 201
    blueprint = {
        "name": "EchoTestBlueprint", "description": "Echo agent for integration testing", "version": "v1",
        "author_id": "test_author", "organization_id": "testorg456", "exposure": "private",
        "category_id": category["id"],
        "spec": {
            "name": "EchoTestBlueprint", "description": "Echo agent for integration testing",
            "agents": [{"name": "EchoAgent", "description": "Agent that echoes messages", "class_name": ECHO,
                        "additional_topics": ["echo_topic"], "listen_to_default_topic": False}],
            "properties": {
                "messaging": {"backend_module": "rustic_ai.redis.messaging.backend",
                              "backend_class": "RedisMessagingBackend",
                              "backend_config": {"redis_client": {"host": "localhost", "port": 6379}}},
                "execution_engine": "rustic_ai.core.guild.execution.sync.sync_exec_engine.SyncExecutionEngine",
            },
        },
    }
    if not server.env.get("REDIS_URL"):
        # The embedded pass runs where no Redis may be: the same blueprint on the site's messaging.
        del blueprint["spec"]["properties"]["messaging"]
    status, created = client.request("POST", "/catalog/blueprints/", blueprint)
    assert status == 201, created
    # Phase 2.1: launch.
    status, launched = client.request("POST", f"/catalog/blueprints/{created['id']}/guilds",
                                      {"guild_name": "EchoTestGuild", "user_id": "testuser123",
                                       "org_id": "testorg456", "description": "My test guild"})
    assert status == 201
    guild_id = launched["id"]
    user_id, user_name = "testuser123", "Test User"

    # Phase 3: system socket; the first health report arrives promptly.
    with client.socket(f"/ws/guilds/{guild_id}/syscomms/{user_id}") as system:
        first = receive_until(system, lambda f: f["format"] == REPORT, timeout=2)
        assert first["payload"]["guild_health"] in {"starting", "ok"}
        # Phase 4: the user socket, connected after the first report, as the seed says.
        with client.socket(f"/ws/guilds/{guild_id}/usercomms/{user_id}/{quote(user_name)}", header=True) as user:
            sys_seen: list = []
            ready = receive_until(system, lambda f: f["format"] == REPORT and f["payload"]["guild_health"] == "ok",
                                  timeout=15, seen=sys_seen)
            assert any(agent_id.startswith("upa-") for agent_id in ready["payload"]["agents"])
            status, guild = client.request("GET", f"/api/guilds/{guild_id}")
            assert guild["status"] == "RUNNING"
            system.send(json.dumps({"format": "participantsRequest", "payload": {"guild_id": guild_id},
                                    "sender": {"id": user_id}, "timestamp": "2025-01-15T10:00:00.000Z",
                                    "conversationId": "conv_123"}))
            participants = receive_until(system, lambda f: f["format"] == "Participants")["payload"]["participants"]
            assert {"id": f"upa-{user_id}", "name": shown_name, "type": "human"} in participants
            assert any(p["name"] == "EchoAgent" and p["type"] == "bot" for p in participants)

            # Phase 5: the seed's text frame, verbatim.
            user.send(json.dumps({"id": "msg123", "format": "text", "payload": {"text": "Hello Echo!"},
                                  "sender": {"id": user_id, "name": user_name}, "conversationId": "conv_789",
                                  "timestamp": "2025-01-15T10:00:00.000Z"}))
            echo = receive_until(user, lambda f: f["payload"].get("text") == "Echo: Hello Echo!")
            assert echo["format"] == "text"
            assert echo["topics"] == [f"user:{user_id}:notifications"]
            assert echo["priority"] == 4
            assert echo["sender"]["name"] == "EchoAgent"

            # A file: uploaded over HTTP, then named in a FilesWithTextFormat frame.
            body, content_type = multipart("file", "document.pdf", b"%PDF-1.4 seed", {"user_id": user_id})
            status, uploaded = client.request("POST", f"/api/guilds/{guild_id}/files/", raw=body,
                                              headers={"Content-Type": content_type})
            assert status == 201, uploaded
            user.send(json.dumps({"format": "rustic_ai.core.ui_protocol.types.FilesWithTextFormat",
                                  "payload": {"files": [{"name": "document.pdf", "url": uploaded["url"]}],
                                              "text": "Here's the document you requested", "tagged_users": []},
                                  "sender": {"id": user_id, "name": user_name}}))
            files = receive_until(user, lambda f: f["format"].endswith("FilesWithTextFormat")
                                  and f["sender"]["name"] == "EchoAgent")
            status, content = client.request("GET", f"{files['payload']['files'][0]['url']}{download_query}")
            assert status == 200
            assert content == b"%PDF-1.4 seed"

            # Stop.
            system.send(json.dumps({"format": "stopGuildRequest", "payload": {"guild_id": guild_id},
                                    "sender": {"id": user_id}}))
            receive_until(system, lambda f: f["format"] == "guildStatus" and f["payload"]["status"] == "STOPPED")
    status, guild = client.request("GET", f"/api/guilds/{guild_id}")
    assert guild["status"] == "STOPPED"
    status, body = server.request("GET", f"/api/guilds/{guild_id}/{user_id}/messages", headers=mallory_headers)
    assert status == 403  # another user's messages are not for mallory
    status, history = client.request("GET", f"/api/guilds/{guild_id}/{user_id}/messages", headers=owner_headers)
    assert status == 200
    texts = [m["payload"].get("text") for m in history]
    assert texts[:2] == ["Hello Echo!", "Echo: Hello Echo!"]
    status, body = client.request("POST", f"/api/guilds/{guild_id}/relaunch")
    assert status == 409
    assert "stopped" in body["detail"]


@pytest.mark.parametrize("path", ["/ws/guilds/unknown/syscomms/u1", "/ws/guilds/unknown/usercomms/u1/U"])
def test_unknown_guild_sockets_close_with_4404(guildsite_server, path):
    with connect(f"{guildsite_server.ws_base}{path}") as ws:
        frame = json.loads(ws.recv(timeout=5))
        assert "does not exist" in frame["payload"]["error_message"]
        with pytest.raises(Exception) as closed:
            ws.recv(timeout=5)
    assert getattr(closed.value, "rcvd", None) is not None
    assert closed.value.rcvd.code == 4404


def closed_with(ws) -> tuple[dict, int]:
    """The error frame a refused socket gets, and the close code a real client then sees."""
    frame = json.loads(ws.recv(timeout=5))
    with pytest.raises(ConnectionClosed) as closed:
        ws.recv(timeout=5)
    assert closed.value.rcvd is not None, "closed without a close frame"
    return frame, closed.value.rcvd.code


@pytest.mark.parametrize("kind", ["syscomms/testuser123", "usercomms/testuser123/Test%20User"])
@pytest.mark.parametrize("credential", ["", "?token=not-a-token", "?token=gsk_unknownkey"])
def test_a_real_client_sees_4401_without_valid_credentials(authenticated_server, kind, credential):
    # Accepted, then closed with 4401: a refusal before accept would reach a browser as HTTP 403 and 1006.
    with connect(f"{authenticated_server.ws_base}/ws/guilds/any-guild/{kind}{credential}") as ws:
        frame, code = closed_with(ws)
    assert code == 4401
    assert frame["payload"]["error_type"] == "UNAUTHENTICATED"
    assert frame["payload"]["error_message"]
