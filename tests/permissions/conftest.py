"""Builders for the permission tests: two organisations with every role, their blueprints and guilds,
the credentials each actor uses, and a small WebSocket client.

Org A: `a-admin` (admin), `launcher` (member; author of A's blueprints and launcher of A's guild),
`a-member` (member, not in the guild until it joins over the user socket), `a-viewer` (viewer).
Org B: `b-admin` (admin; creator of org B's keys, a write key and a read key), `b-member`,
`b-author` (members). Org C exists and has nobody in it."""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from pydantic import BaseModel, ConfigDict

from catalog.models import Blueprint, Exposure
from guilds import files
from guilds.engines import engine_named
from guilds.models import Guild, GuildStatus
from guilds.runtime import loop as runtime_loop
from guilds.runtime.agent import Agent
from guildsite.accounts.models import Organization
from tests import factories
from tests.runtime.conftest import celery_workers, rig  # noqa: F401 - shared fixtures (both engines)

ORG_A, ORG_B, ORG_C = "org-a", "org-b", "org-c"
ERROR = "rustic_ai.core.agents.commons.message_formats.ErrorMessage"
REPORT = "rustic_ai.core.guild.agent_ext.mixins.health.AgentsHealthReport"
FILE_NAME, FILE_BYTES = "notes.txt", b"hello guild"


@dataclass(frozen=True)
class Who:
    """An actor of the matrix: whom it acts as, where it launches, how it authenticates."""

    label: str
    username: str | None = None  # None: anonymous (or development without a name)
    home: str = ORG_A  # the organisation it launches and creates into
    key: str | None = None  # authenticates with this org-B key ("write" or "read"), made by `username`
    development: bool = False  # AUTH_DISABLED=1: names itself with X-User-Id / the socket URL

    @property
    def acting_name(self) -> str:
        """The user id it puts in launch bodies and socket URLs."""
        return self.username or "nobody"


ACTORS: dict[str, Who] = {who.label: who for who in (
    Who("A-admin", "a-admin"),
    Who("A-launcher", "launcher"),
    Who("A-member", "a-member"),
    Who("A-viewer", "a-viewer"),
    Who("B-admin", "b-admin", ORG_B),
    Who("B-member", "b-member", ORG_B),
    Who("B-key", "b-admin", ORG_B, key="write"),
    Who("B-read-key", "b-admin", ORG_B, key="read"),
    Who("anonymous"),
    Who("dev-named", "dev-outsider", "org-dev", development=True),
    Who("dev-unnamed", development=True),
)}


@dataclass
class World:
    """What a cell acts on, and each actor's credential."""

    credentials: dict[str, str]  # actor label -> the bearer credential (a JWT, or the API key)
    guild: Guild | None = None  # org A's, launched by `launcher`, RUNNING
    other_guild: Guild | None = None  # org B's, launched by `b-member`, RUNNING
    blueprints: dict[str, Blueprint] = field(default_factory=dict)  # by name: A-private, ..., B-org

    def headers(self, who: Who) -> dict[str, str]:
        """Headers for the DRF test client."""
        if who.development:
            return {"HTTP_X_USER_ID": who.username} if who.username else {}
        credential = self.credentials.get(who.label)
        return {"HTTP_AUTHORIZATION": f"Bearer {credential}"} if credential else {}

    def query(self, who: Who) -> str:
        """The socket URL's query string."""
        credential = self.credentials.get(who.label)
        return f"?token={credential}" if credential else ""


def cast() -> dict[str, str]:
    """The organisations and their people; returns each actor's credential."""
    factories.organization(ORG_A, **{"a-admin": "admin", "launcher": "member", "a-member": "member",
                                     "a-viewer": "viewer"})
    factories.organization(ORG_B, **{"b-admin": "admin", "b-member": "member", "b-author": "member"})
    factories.organization(ORG_C)
    credentials = {who.label: factories.token(who.username) for who in ACTORS.values()
                   if who.username and not who.key and not who.development}
    for who in ACTORS.values():
        if who.key:
            credentials[who.label] = factories.api_key(ORG_B, who.username, scopes=[who.key])[1]
    return credentials


def catalog() -> dict[str, Blueprint]:
    """A's blueprints by `launcher`, one per exposure (A-shared shared with org B), and B's two."""
    made = {
        "A-private": factories.blueprint(author="launcher", org=ORG_A, exposure=Exposure.PRIVATE, name="A-private"),
        "A-org": factories.blueprint(author="launcher", org=ORG_A, exposure=Exposure.ORGANIZATION, name="A-org"),
        "A-shared": factories.blueprint(author="launcher", org=ORG_A, exposure=Exposure.SHARED, name="A-shared"),
        "A-public": factories.blueprint(author="launcher", org=ORG_A, exposure=Exposure.PUBLIC, name="A-public"),
        "B-private": factories.blueprint(author="b-author", org=ORG_B, exposure=Exposure.PRIVATE, name="B-private"),
        "B-org": factories.blueprint(author="b-member", org=ORG_B, exposure=Exposure.ORGANIZATION, name="B-org"),
    }
    made["A-shared"].shared_with.add(Organization.objects.get(pk=ORG_B))
    return made


def rest_world() -> World:
    """Everything REST cells act on; guilds are RUNNING in the database and nothing runs them.
    Their spec names the in-process engine, so a stop or relaunch acts here, in this process."""
    credentials = cast()
    guild = factories.guild("guild-a", org=ORG_A, user="launcher", status=GuildStatus.RUNNING,
                            execution_engine="inprocess")
    other = factories.guild("guild-b", org=ORG_B, user="b-member", status=GuildStatus.RUNNING,
                            execution_engine="inprocess")
    files.guild_file_upload(guild=guild, user_id="launcher", metadata={},
                            upload=SimpleUploadedFile(FILE_NAME, FILE_BYTES, content_type="text/plain"))
    return World(credentials=credentials, guild=guild, other_guild=other, blueprints=catalog())


@pytest.fixture
def media(settings, tmp_path):
    settings.MEDIA_ROOT = str(tmp_path)
    return tmp_path


@pytest.fixture
def world(media) -> World:
    return rest_world()


@pytest.fixture
def forget_guilds():
    """Guild ids to take off the in-process engine at the end (a relaunch really starts one)."""
    launched: list[str] = []
    yield launched
    for guild_id in launched:
        runtime_loop.run(engine_named("inprocess").forget(guild_id))


@pytest.fixture
def socket_world(rig) -> World:  # noqa: F811 - pytest fixture injection
    """Org A's guild, launched by `launcher` and running on the rig's engine."""
    credentials = cast()
    guild = factories.guild("guild-a", org=ORG_A, user="launcher", execution_engine=rig.engine.name)
    rig.guilds.append(guild)  # the rig stops it at the end
    rig.launch(guild)
    rig.wait_status(guild, GuildStatus.RUNNING)
    return World(credentials=credentials, guild=guild)


# --- an agent class with credentials among its properties (no shipped agent takes any) ----------


class KeyedAgent(Agent):
    """Echoes nothing; it only declares the kind of properties an LLM agent has."""

    class Properties(BaseModel):
        model_config = ConfigDict(extra="forbid")
        api_key: str = ""
        max_tokens: int = 0


KEYED_AGENT = f"{__name__}.KeyedAgent"


@pytest.fixture
def keyed_agents(settings):
    """Specs may name KeyedAgent (agent classes must live in GUILDSITE_AGENT_PACKAGES)."""
    settings.GUILDSITE_AGENT_PACKAGES = [*settings.GUILDSITE_AGENT_PACKAGES, __name__.rpartition(".")[0]]
    return KEYED_AGENT
