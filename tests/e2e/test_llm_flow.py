"""Seed 000's flow against a real server whose blueprint's agent is the LLM agent, on the site's provider settings
(LLM_BASE_URL, LLM_MODEL, OPENAI_API_KEY) pointing at the fake provider: chunks, then the reply, over real sockets."""

from __future__ import annotations

import json
from urllib.parse import quote

import pytest
from websockets.sync.client import connect

from tests.e2e.test_seed_flow import REPORT, receive_until
from tests.support.fake_llm import FakeLLM
from tests.support.live_server import LiveServer, service_env


@pytest.fixture(scope="module")
def provider():
    server = FakeLLM()
    yield server
    server.close()


@pytest.fixture(scope="module")
def llm_server(provider):
    server = LiveServer(env={"GUILDSITE_HEARTBEAT_INTERVAL": "0.5", "GUILDSITE_HEARTBEAT_TIMEOUT": "3",
                             "LLM_BASE_URL": provider.base_url, "LLM_MODEL": "gpt-4o-mini",
                             "OPENAI_API_KEY": "sk-e2e-key", **service_env()})
    server.migrate()
    server.start()
    yield server
    server.stop()


def test_the_seed_flow_with_an_llm_agent_streams_chunks_then_replies(llm_server, provider):
    server = llm_server
    spec = {"name": "LLMTestBlueprint", "description": "An LLM agent",
            "agents": [{"name": "Assistant", "description": "Answers with a model",
                        "class_name": "guilds.agents.llm.LLMAgent", "additional_topics": ["llm_topic"],
                        "listen_to_default_topic": False, "properties": {"system_prompt": "Be kind."}}]}
    status, created = server.request("POST", "/catalog/blueprints/", {
        "name": "LLMTestBlueprint", "description": "An LLM agent", "version": "v1", "author_id": "test_author",
        "organization_id": "testorg456", "exposure": "private", "spec": spec})
    assert status == 201, created
    status, launched = server.request("POST", f"/catalog/blueprints/{created['id']}/guilds",
                                      {"guild_name": "LLMGuild", "user_id": "testuser123", "org_id": "testorg456"})
    assert status == 201, launched
    guild_id, user_id = launched["id"], "testuser123"
    with connect(f"{server.ws_base}/ws/guilds/{guild_id}/syscomms/{user_id}") as system:
        receive_until(system, lambda f: f["format"] == REPORT, timeout=5)
        with connect(f"{server.ws_base}/ws/guilds/{guild_id}/usercomms/{user_id}/{quote('Test User')}") as user:
            receive_until(system, lambda f: f["format"] == REPORT and f["payload"]["guild_health"] == "ok", timeout=15)
            user.send(json.dumps({"id": "msg123", "format": "text", "payload": {"text": "Hello model!"},
                                  "sender": {"id": user_id, "name": "Test User"}, "conversationId": "conv_789",
                                  "timestamp": "2025-01-15T10:00:00.000Z"}))
            seen: list = []
            reply = receive_until(user, lambda f: f["format"] == "text" and f["sender"]["name"] == "Assistant",
                                  timeout=15, seen=seen)
    chunks = [f["payload"] for f in seen if f["format"] == "stream_chunk"]
    assert chunks[0]["chunk_type"] == "assistant_token"
    assert chunks[-1] == {**chunks[-1], "chunk_type": "assistant_message", "content": "Hello from the fake model."}
    assert [c["seq"] for c in chunks] == list(range(1, len(chunks) + 1))
    assert reply["payload"]["text"] == "Hello from the fake model."
    assert reply["topics"] == [f"user:{user_id}:notifications"]
    assert reply["conversation_id"] == "conv_789"
    sent = provider.requests[-1]
    assert sent["authorization"] == "Bearer sk-e2e-key"
    assert sent["body"]["model"] == "gpt-4o-mini"
    assert sent["body"]["messages"] == [{"role": "system", "content": "Be kind."},
                                        {"role": "user", "content": "Hello model!"}]
