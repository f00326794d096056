"""Runtime fixtures: real guilds on the real engine and bus, observed from the bus itself."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from typing import Any

import pytest

from guilds.engines import bus_of, engine_named
from guilds.models import Guild
from guilds.runtime import formats
from guilds.runtime import loop as runtime_loop
from guilds.runtime.requests import system_request
from guilds.services import guild_create
from guilds.spec import validate_guild_spec
from messaging import topics as topic_names
from messaging.clients import SimpleClient
from messaging.message import AgentTag, Message
from tests import factories

ECHO = "rustic_ai.core.agents.testutils.echo_agent.EchoAgent"
PROBE = "guilds.agents.probe.ProbeAgent"


def wait_for(predicate: Callable[[], Any], timeout: float = 10.0, what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.01)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


class Observer:
    """A client on a guild's bus that records what arrives on the topics it watches."""

    def __init__(self, guild: Guild, topics: list[str]) -> None:
        self.guild = guild
        self.messages: list[Message] = []
        self.client = SimpleClient(id=f"observer-{id(self)}", name="observer", handler=self.messages.append)
        self.bus = bus_of(guild.id, guild.spec)
        runtime_loop.run(self._subscribe(topics))

    async def _subscribe(self, topics: list[str]) -> None:
        await self.bus.register_client(self.client)
        for topic in topics:
            await self.bus.subscribe(topic, self.client)

    def close(self) -> None:
        runtime_loop.run(self.bus.unregister_client(self.client))

    def of_format(self, name: str) -> list[Message]:
        return [m for m in list(self.messages) if m.format == name]

    def wait(self, predicate: Callable[[Message], bool], timeout: float = 10.0, what: str = "a message") -> Message:
        return wait_for(lambda: next((m for m in list(self.messages) if predicate(m)), None), timeout, what)

    def statuses(self) -> list[str]:
        return [m.payload["status"] for m in self.of_format(formats.GUILD_STATUS)]

    def publish(self, topic: str, payload: dict, format: str = "text", sender: AgentTag | None = None) -> Message:
        message = Message.create(sender=sender or AgentTag(id="tester", name="Tester"), topics=topic,
                                 payload=payload, format=format)
        return runtime_loop.run(self.bus.publish(message))


class GuildRig:
    """Launch guilds for a test, and stop whatever is still running afterwards."""

    def __init__(self, engine_name: str) -> None:
        self.engine = engine_named(engine_name)
        self.guilds: list[Guild] = []
        self.observers: list[Observer] = []
        self.workers: Any = None  # the Celery engine's workers: their log tells why a wait ran out

    def create(self, spec: dict, *, user_id: str = "testuser123", launch: bool = True) -> Guild:
        # The spec names its engine, as a user's would: services (stop, relaunch) then find it.
        properties = dict(spec.get("properties") or {})
        properties.setdefault("execution_engine", self.engine.name)
        spec = {**spec, "properties": properties}
        launcher = factories.member("testorg456", user_id)
        guild = guild_create(spec=validate_guild_spec(spec), name=spec["name"], launched_by=launcher,
                             organization=launcher.organizations.get(pk="testorg456"), launch=False)
        self.guilds.append(guild)
        if launch:
            self.launch(guild)
        return guild

    def launch(self, guild: Guild) -> None:
        runtime_loop.run(self.engine.launch(guild.id))

    def observe(self, guild: Guild, *topics: str) -> Observer:
        observer = Observer(guild, list(topics) or [topic_names.GUILD_STATUS_TOPIC])
        self.observers.append(observer)
        return observer

    def status(self, guild: Guild) -> str:
        guild.refresh_from_db()
        return guild.status

    def wait_status(self, guild: Guild, status: str, timeout: float = 10.0) -> None:
        try:
            wait_for(lambda: self.status(guild) == status, timeout, f"guild status {status} (is {guild.status})")
        except AssertionError as exc:
            if self.workers is None:
                raise
            raise AssertionError(f"{exc}\n--- the Celery workers' log, last lines:\n{self.workers.log()}") from None

    def join(self, guild: Guild, user_id: str, user_name: str) -> None:
        runtime_loop.run(system_request(bus_of(guild.id, guild.spec), format_name=formats.USER_AGENT_CREATION_REQUEST,
                                        payload={"user_id": user_id, "user_name": user_name}, user_id=user_id))

    def cleanup(self) -> None:
        for observer in self.observers:
            observer.close()
        for guild in self.guilds:
            runtime_loop.run(self.engine.forget(guild.id))


HEARTBEAT = {"GUILDSITE_HEARTBEAT_INTERVAL": "0.2", "GUILDSITE_HEARTBEAT_TIMEOUT": "1.0"}
TEST_AGENTS = "tests.runtime.agents"  # agent classes of the tests' own
MAX_ATTEMPTS = 3  # a poison message reaches the dead letters after this many tries
# LLM agents in workers call the tests' fake provider (tests.support.fake_llm) on a loopback port.
LLM_SETTINGS = {"GUILDSITE_LLM_HOSTS": "127.0.0.1,api.openai.com",
                "GUILDSITE_LLM_KEY_ENVS": "OPENAI_API_KEY,GUILDSITE_TEST_LLM_KEY,GUILDSITE_TEST_MCP_TOKEN",
                "GUILDSITE_TEST_LLM_KEY": "sk-fake-test-key", "GUILDSITE_LLM_RETRY_BASE_SECONDS": "0.05",
                "GUILDSITE_LLM_TIMEOUT_SECONDS": "5",
                # LLM agents' tools: the tests' MCP server (tests.support.mcp_server), also on a loopback port.
                "GUILDSITE_MCP_HOSTS": "127.0.0.1", "GUILDSITE_TEST_MCP_TOKEN": "mcp-test-token",
                "GUILDSITE_MCP_TOKEN_HOSTS": '{"GUILDSITE_TEST_MCP_TOKEN": ["127.0.0.1"]}',
                "GUILDSITE_MCP_TIMEOUT_SECONDS": "5"}
# Outbound webhooks go to the tests' receivers on loopback ports, retried within a test's patience.
WEBHOOK_SETTINGS = {"GUILDSITE_WEBHOOK_ALLOW_PRIVATE": "1", "GUILDSITE_WEBHOOK_RETRY_BASE_SECONDS": "0.05",
                    "GUILDSITE_WEBHOOK_RETRY_FACTOR": "1.5", "GUILDSITE_WEBHOOK_TIMEOUT_SECONDS": "5",
                    # No sweep: its query joining deliveries to webhooks deadlocked with a teardown's TRUNCATE.
                    "GUILDSITE_WEBHOOK_SWEEP_SECONDS": "0"}
RUNTIME_SETTINGS = {**HEARTBEAT, "GUILDSITE_AGENT_PACKAGES": f"guilds.agents,guilds.runtime,{TEST_AGENTS}",
                    "GUILDSITE_DELIVERY_MAX_ATTEMPTS": str(MAX_ATTEMPTS), **LLM_SETTINGS,
                    # Tests drive schedules' ticks themselves (guilds.schedules.tick(now)): the workers' beat does
                    # not tick them, nor lock rows that a test's teardown empties.
                    "GUILDSITE_SCHEDULE_TICKER": "off", **WEBHOOK_SETTINGS}
# Every runtime and socket test runs on both engines where Redis is (the services pass).
ENGINES = ["inprocess", pytest.param("celery", marks=pytest.mark.services)]


@pytest.fixture(scope="session")
def celery_workers(django_db_setup, django_db_blocker):
    """A real worker (with beat) on the test database and the test Redis, for the Celery engine."""
    from django.db import connection

    from tests.support.workers import CeleryWorkers

    if not settings_redis_url():
        pytest.fail("the Celery engine's tests need REDIS_URL (the services pass of make test)")
    db = connection.settings_dict
    database_url = f"postgres://{db['USER']}@{db['HOST']}:{db['PORT']}/{db['NAME']}" if db["ENGINE"].endswith(
        "postgresql") else f"sqlite:///{db['NAME']}"
    from guildsite.celery import app

    queue = f"guildsite-test-{uuid.uuid4().hex[:8]}"
    # This run's own queue, shared with its workers only (the app reads its settings with the CELERY_ prefix).
    app.conf.CELERY_TASK_DEFAULT_QUEUE = queue
    workers = CeleryWorkers({"DATABASE_URL": database_url, "REDIS_URL": settings_redis_url(),
                             "GUILDSITE_EXECUTION_ENGINE": "celery", "GUILDSITE_CELERY_QUEUE": queue,
                             **RUNTIME_SETTINGS}).start()
    yield workers
    workers.stop()


def settings_redis_url() -> str | None:
    from django.conf import settings

    return settings.REDIS_URL


@pytest.fixture(params=ENGINES)
def rig(request, transactional_db, settings):
    settings.GUILDSITE_HEARTBEAT_INTERVAL = float(HEARTBEAT["GUILDSITE_HEARTBEAT_INTERVAL"])
    settings.GUILDSITE_HEARTBEAT_TIMEOUT = float(HEARTBEAT["GUILDSITE_HEARTBEAT_TIMEOUT"])
    settings.GUILDSITE_AGENT_PACKAGES = [*settings.GUILDSITE_AGENT_PACKAGES, TEST_AGENTS]
    settings.GUILDSITE_DELIVERY_MAX_ATTEMPTS = MAX_ATTEMPTS
    rig = GuildRig(request.param)
    if request.param == "celery":
        rig.workers = request.getfixturevalue("celery_workers")
    yield rig
    rig.cleanup()


def echo_spec(**overrides: Any) -> dict:
    """Seed 000's blueprint spec, with its messaging and engine left to the site (overridable)."""
    spec = {
        "name": "EchoTestBlueprint",
        "description": "Echo agent for integration testing",
        "agents": [
            {
                "name": "EchoAgent",
                "description": "Agent that echoes messages",
                "class_name": ECHO,
                "additional_topics": ["echo_topic"],
                "listen_to_default_topic": False,
            }
        ],
    }
    spec.update(overrides)
    return spec


def seed_spec() -> dict:
    """Seed 000's blueprint spec verbatim (Redis on localhost:6379, SyncExecutionEngine)."""
    return echo_spec(
        properties={
            "messaging": {
                "backend_module": "rustic_ai.redis.messaging.backend",
                "backend_class": "RedisMessagingBackend",
                "backend_config": {"redis_client": {"host": "localhost", "port": 6379}},
            },
            "execution_engine": "rustic_ai.core.guild.execution.sync.sync_exec_engine.SyncExecutionEngine",
        }
    )



IDLE_SECONDS = 1.0  # the tests' idle time (GUILDSITE_GUILD_IDLE_SECONDS)


class IdleChecks:
    """Idle guilds get suspended: the in-process engine looks by itself every quarter of the idle time; on
    the Celery engine beat's task does, and the workers' beat runs it only once a minute, so the test sends
    that same task to the workers (with the tests' idle time) while it waits."""

    def __init__(self, rig: GuildRig, queue: str | None) -> None:
        self.rig = rig
        self.queue = queue
        self._sent = 0.0

    def round(self) -> None:
        if self.queue is None or time.monotonic() - self._sent < IDLE_SECONDS / 4:
            return
        from guilds.tasks import suspend_idle_guilds

        suspend_idle_guilds.apply_async(kwargs={"idle_seconds": IDLE_SECONDS}, queue=self.queue)
        self._sent = time.monotonic()

    def suspended(self, guild: Guild) -> bool:
        self.round()
        guild.refresh_from_db()
        return guild.suspended

    def wait_suspended(self, guild: Guild, timeout: float = 15.0) -> None:
        """Flagged, and unloaded (the flag comes first)."""
        wait_for(lambda: self.suspended(guild) and not self.rig.engine.is_guild_running(guild.id), timeout,
                 f"guild {guild.id} suspended")


@pytest.fixture
def idle_checks(rig, settings, request) -> IdleChecks:
    settings.GUILDSITE_GUILD_IDLE_SECONDS = IDLE_SECONDS
    queue = None
    if rig.engine.name == "celery":
        queue = request.getfixturevalue("celery_workers").env["GUILDSITE_CELERY_QUEUE"]
    return IdleChecks(rig, queue)
