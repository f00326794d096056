"""Seed 000's whole flow against a real server over real sockets, every request and frame as the seed writes them."""

from __future__ import annotations

import json
import time
import uuid
from urllib.parse import quote

import pytest
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


def test_seed_000_flow_end_to_end(guildsite_server):
    server = guildsite_server
    # Phase 1.1: register the agent (201 on a fresh site, 409 if it is already there).
    agent = {"qualified_class_name": ECHO, "description": "Agent that echoes messages back to the sender",
             "properties_schema": {}, "dependencies": []}
    status, _ = server.request("POST", "/catalog/agents", agent)
    assert status == 201
    status, body = server.request("POST", "/catalog/agents", agent)
    assert status == 409
    assert ECHO in body["detail"]
    # Phase 1.2 and 1.3.
    status, category = server.request("POST", "/catalog/categories/",
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
    status, created = server.request("POST", "/catalog/blueprints/", blueprint)
    assert status == 201, created
    # Phase 2.1: launch.
    status, launched = server.request("POST", f"/catalog/blueprints/{created['id']}/guilds",
                                      {"guild_name": "EchoTestGuild", "user_id": "testuser123",
                                       "org_id": "testorg456", "description": "My test guild"})
    assert status == 201
    guild_id = launched["id"]
    user_id, user_name = "testuser123", "Test User"

    # Phase 3: system socket; the first health report arrives promptly.
    with connect(f"{server.ws_base}/ws/guilds/{guild_id}/syscomms/{user_id}") as system:
        first = receive_until(system, lambda f: f["format"] == REPORT, timeout=2)
        assert first["payload"]["guild_health"] in {"starting", "ok"}
        # Phase 4: the user socket, connected after the first report, as the seed says.
        with connect(f"{server.ws_base}/ws/guilds/{guild_id}/usercomms/{user_id}/{quote(user_name)}") as user:
            sys_seen: list = []
            ready = receive_until(system, lambda f: f["format"] == REPORT and f["payload"]["guild_health"] == "ok",
                                  timeout=15, seen=sys_seen)
            assert any(agent_id.startswith("upa-") for agent_id in ready["payload"]["agents"])
            status, guild = server.request("GET", f"/api/guilds/{guild_id}")
            assert guild["status"] == "RUNNING"
            system.send(json.dumps({"format": "participantsRequest", "payload": {"guild_id": guild_id},
                                    "sender": {"id": user_id}, "timestamp": "2025-01-15T10:00:00.000Z",
                                    "conversationId": "conv_123"}))
            participants = receive_until(system, lambda f: f["format"] == "Participants")["payload"]["participants"]
            assert {"id": f"upa-{user_id}", "name": user_name, "type": "human"} in participants
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
            status, uploaded = server.request("POST", f"/api/guilds/{guild_id}/files/", raw=body,
                                              headers={"Content-Type": content_type})
            assert status == 201, uploaded
            user.send(json.dumps({"format": "rustic_ai.core.ui_protocol.types.FilesWithTextFormat",
                                  "payload": {"files": [{"name": "document.pdf", "url": uploaded["url"]}],
                                              "text": "Here's the document you requested", "tagged_users": []},
                                  "sender": {"id": user_id, "name": user_name}}))
            files = receive_until(user, lambda f: f["format"].endswith("FilesWithTextFormat")
                                  and f["sender"]["name"] == "EchoAgent")
            status, content = server.request("GET", f"{files['payload']['files'][0]['url']}?user_id={user_id}")
            assert status == 200
            assert content == b"%PDF-1.4 seed"

            # Stop.
            system.send(json.dumps({"format": "stopGuildRequest", "payload": {"guild_id": guild_id},
                                    "sender": {"id": user_id}}))
            receive_until(system, lambda f: f["format"] == "guildStatus" and f["payload"]["status"] == "STOPPED")
    status, guild = server.request("GET", f"/api/guilds/{guild_id}")
    assert guild["status"] == "STOPPED"
    status, body = server.request("GET", f"/api/guilds/{guild_id}/{user_id}/messages",
                                  headers={"X-User-Id": "mallory"})
    assert status == 403  # another user's messages are not for mallory
    status, history = server.request("GET", f"/api/guilds/{guild_id}/{user_id}/messages",
                                     headers={"X-User-Id": user_id})
    assert status == 200
    texts = [m["payload"].get("text") for m in history]
    assert texts[:2] == ["Hello Echo!", "Echo: Hello Echo!"]
    status, body = server.request("POST", f"/api/guilds/{guild_id}/relaunch")
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
