"""What a user sends on their socket reaches the guild in the order sent, none lost: one at a time and in a
burst. The user's proxy carries the first message from its inbox; after it the socket carries a message into the
guild itself when the engine can (`forward_for_user`: in production once a drain in the web process has loaded the
proxy; in-process while the proxy has nothing to do, which during a burst depends on the loop's interleaving, so
its count is not asserted here: tests/runtime/test_lifecycle.py is its deterministic test)."""

from __future__ import annotations

import json

from websockets.sync.client import connect

from tests.e2e.test_seed_flow import ECHO, REPORT, receive_until

HEADERS = {"X-User-Id": "orderly"}


def launch_echo_guild(server) -> str:
    status, blueprint = server.request("POST", "/catalog/blueprints/", {
        "name": "OrderedEcho", "author_id": "orderly", "spec": {"name": "OrderedEcho", "agents": [
            {"name": "EchoAgent", "class_name": ECHO, "additional_topics": ["echo_topic"],
             "listen_to_default_topic": False}]}}, headers=HEADERS)
    assert status == 201, blueprint
    status, guild = server.request("POST", f"/catalog/blueprints/{blueprint['id']}/guilds",
                                   {"guild_name": "ordered", "user_id": "orderly", "org_id": "orderly-org"},
                                   headers=HEADERS)
    assert status == 201, guild
    server.guild_reaches(guild["id"], "RUNNING", headers=HEADERS)
    return guild["id"]


def test_a_users_messages_reach_the_guild_in_order_one_at_a_time_and_in_a_burst(guildsite_server):
    guild_id = launch_echo_guild(guildsite_server)
    base = f"{guildsite_server.ws_base}/ws/guilds/{guild_id}"
    with connect(f"{base}/syscomms/orderly") as system, connect(f"{base}/usercomms/orderly/Orderly") as user:
        receive_until(system, lambda f: f["format"] == REPORT and f["payload"]["guild_health"] == "ok", timeout=20)
        for index in range(10):  # each answered before the next is sent
            user.send(json.dumps({"id": f"one-{index}", "format": "text", "payload": {"text": f"one-{index}"}}))
            receive_until(user, lambda f, i=index: f["payload"].get("text") == f"Echo: one-{i}", timeout=15)

        burst = [f"burst-{index}" for index in range(40)]
        for text in burst:
            user.send(json.dumps({"id": text, "format": "text", "payload": {"text": text}}))
        mine, echoes = [], []
        while len(echoes) < len(burst):
            frame = receive_until(user, lambda f: str(f["payload"].get("text", "")).removeprefix(
                "Echo: ").startswith("burst-"), timeout=15)
            text = frame["payload"]["text"]
            (echoes if text.startswith("Echo: ") else mine).append(text)
    assert echoes == [f"Echo: {text}" for text in burst]  # every one, in the order sent
    assert mine == burst  # and the user saw each as the guild got it, in that order

    status, inbox = guildsite_server.request(
        "GET", f"/api/guilds/{guild_id}/history?topic=user:orderly:inbox&limit=100", headers=HEADERS)
    assert status == 200, inbox
    through_the_inbox = len(inbox["messages"])
    assert through_the_inbox >= 1  # the first, before the proxy was proven
    if guildsite_server.workers is not None:  # production: after the first, the socket carried most of them
        assert through_the_inbox < 25, through_the_inbox
