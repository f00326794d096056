"""`manage.py load_demo_data`: what a newcomer needs to try the seed's flow, safe to run every time.

Registers the EchoAgent under the seed's name, the LLMAgent (and an LLMChatBlueprint on the site's
provider), the "Testing" category and the seed's EchoTestBlueprint (on the site's default messaging
and engine) in the seed's organisation
`testorg456`, makes sure an `admin` superuser exists (an admin of that organisation) whose
password is kept in var/admin_password, and prints the URLs and how to get a token.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandParser
from django.db import transaction

from catalog.models import AgentEntry, Blueprint, Category
from catalog.seed import LLM_AGENT, SEED_CATEGORY, SEED_ECHO_AGENT, demo_blueprint_spec, llm_blueprint_spec
from catalog.services import agent_entry_register, blueprint_create, category_create
from guildsite.accounts.models import Membership, Organization, Role
from guildsite.accounts.services import organization_create, user_get_or_create

ADMIN_USERNAME = "admin"
DEMO_ORGANIZATION = "testorg456"
DEMO_AUTHOR = "test_author"
DEMO_BLUEPRINT = {"name": "EchoTestBlueprint", "version": "v1"}
LLM_BLUEPRINT = {"name": "LLMChatBlueprint", "version": "v1"}


class Command(BaseCommand):
    help = ("Load the demo catalog (EchoAgent, LLMAgent, Testing, EchoTestBlueprint, LLMChatBlueprint) and the admin login; "
            "idempotent.")

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--host", default="127.0.0.1", help="Host the site is served on (for the printed URLs).")
        parser.add_argument("--port", type=int, default=settings.PORT, help="Port the site is served on.")

    def handle(self, *args: Any, host: str, port: int, **options: Any) -> None:
        with transaction.atomic():
            password_note, password = self._admin_login()
            blueprint = self._catalog()
        base = f"http://{host}:{port}"
        self.stdout.write("")
        self.stdout.write(self.style.SUCCESS("guildsite is ready:"))
        self.stdout.write(f"  dashboard   {base}/dashboard/   (chat: {base}/chat/)")
        self.stdout.write(f"  API docs    {base}/api/docs/   (schema: {base}/api/schema/)")
        self.stdout.write(f"  admin       {base}/admin/   user: {ADMIN_USERNAME}  {password_note}")
        self.stdout.write(f"  demo blueprint {blueprint.name} id={blueprint.id}; launch a guild from it with")
        if settings.AUTH_DISABLED:
            self.stdout.write(
                f"    curl -X POST {base}/catalog/blueprints/{blueprint.id}/guilds -H 'Content-Type: application/json' "
                """-d '{"guild_name": "EchoTestGuild", "user_id": "testuser123", "org_id": "testorg456"}'"""
            )
            self.stdout.write("  authentication is off (AUTH_DISABLED=1, development): requests act as the user they name.")
        else:
            self.stdout.write(
                f"    curl -X POST {base}/catalog/blueprints/{blueprint.id}/guilds -H 'Content-Type: application/json' "
                f"""-H "Authorization: Bearer $TOKEN" -d '{{"guild_name": "EchoTestGuild", "user_id": "{ADMIN_USERNAME}", """
                f""""org_id": "{DEMO_ORGANIZATION}"}}'"""
            )
        self.stdout.write("  LLMChatBlueprint chats with a model: set OPENAI_API_KEY, or LLM_BASE_URL for another "
                          "OpenAI-compatible server such as Ollama (README \"LLM agents\")")
        self.stdout.write("  get a token:")
        self.stdout.write(f"    curl -X POST {base}/api/auth/token -H 'Content-Type: application/json' "
                          f"""-d '{{"username": "{ADMIN_USERNAME}", "password": "{password or '<password>'}"}}'""")
        self.stdout.write(f"    (or: .venv/bin/python manage.py mint_token {ADMIN_USERNAME})")
        self.stdout.write("")

    def _organization(self) -> Organization:
        admin = get_user_model().objects.get(username=ADMIN_USERNAME)
        organization = Organization.objects.filter(pk=DEMO_ORGANIZATION).first()
        if organization is None:
            organization = organization_create(name=DEMO_ORGANIZATION, creator=admin, id=DEMO_ORGANIZATION)
            self.stdout.write(f"created organisation {DEMO_ORGANIZATION}")
        Membership.objects.get_or_create(user=admin, organization=organization, defaults={"role": Role.ADMIN})
        return organization

    def _catalog(self) -> Blueprint:
        if not AgentEntry.objects.filter(qualified_class_name=SEED_ECHO_AGENT).exists():
            # Description, handlers and schema come from the class itself.
            agent_entry_register(qualified_class_name=SEED_ECHO_AGENT)
            self.stdout.write(f"registered agent class {SEED_ECHO_AGENT}")
        category = Category.objects.filter(name__iexact=SEED_CATEGORY["name"]).first()
        if category is None:
            category, _ = category_create(**SEED_CATEGORY)
            self.stdout.write(f"created category {category.name}")
        organization = self._organization()
        blueprint = Blueprint.objects.filter(**DEMO_BLUEPRINT, author__username=DEMO_AUTHOR).order_by("created_at").first()
        if blueprint is None:
            author = user_get_or_create(DEMO_AUTHOR)  # a name, not an account anyone signs in with
            Membership.objects.get_or_create(user=author, organization=organization, defaults={"role": Role.MEMBER})
            blueprint = blueprint_create(
                **DEMO_BLUEPRINT,
                author=author,
                description="Echo agent for integration testing",
                organization=organization,
                # Anyone in the organisation may launch the demo (the seed's own blueprint is private).
                exposure="organization",
                category=category,
                spec=demo_blueprint_spec(),
            )
            self.stdout.write(f"created blueprint {blueprint.name}")
        self._llm(organization, category)
        return blueprint

    def _llm(self, organization: Organization, category: Category) -> None:
        """The LLM agent and a blueprint to chat with it (it answers with what to set until a provider is)."""
        if not AgentEntry.objects.filter(qualified_class_name=LLM_AGENT).exists():
            agent_entry_register(qualified_class_name=LLM_AGENT)
            self.stdout.write(f"registered agent class {LLM_AGENT}")
        if not Blueprint.objects.filter(**LLM_BLUEPRINT, author__username=DEMO_AUTHOR).exists():
            blueprint = blueprint_create(
                **LLM_BLUEPRINT, author=user_get_or_create(DEMO_AUTHOR), description=llm_blueprint_spec()["description"],
                organization=organization, exposure="organization", category=category, spec=llm_blueprint_spec(),
            )
            self.stdout.write(f"created blueprint {blueprint.name}")

    def _admin_login(self) -> tuple[str, str | None]:
        """Make sure `admin` can log in; never change a password that already exists.
        Returns (what to print about the password, the password when it is known)."""
        password_file = Path(settings.VAR_DIR) / "admin_password"
        stored = password_file.read_text().strip() if password_file.exists() else ""
        users = get_user_model()
        if users.objects.filter(username=ADMIN_USERNAME).exists():
            if stored:
                return f"password: {stored}   (kept in {password_file})", stored
            return "password: the one set earlier (not in var/admin_password; `manage.py changepassword admin`)", None
        # A kept password is reused, so a fresh database still matches the file a newcomer has seen.
        password = stored or secrets.token_urlsafe(12)
        users.objects.create_superuser(ADMIN_USERNAME, email="", password=password)
        if not stored:
            password_file.parent.mkdir(parents=True, exist_ok=True)
            # Readable by the owner only, from the moment it exists.
            with os.fdopen(os.open(password_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "w") as out:
                out.write(password + "\n")
        self.stdout.write(f"created superuser {ADMIN_USERNAME}")
        return f"password: {password}   (kept in {password_file})", password
