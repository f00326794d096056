"""`manage.py create_organization NAME --admin USERNAME [--id ID]` (as POST /api/organizations)."""

from __future__ import annotations

from typing import Any

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError, CommandParser

from guildsite.accounts import services


class Command(BaseCommand):
    help = "Create an organisation with a user as its admin; prints its id."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("name")
        parser.add_argument("--admin", required=True, help="The user who becomes its admin.")
        parser.add_argument("--id", dest="organization_id", help="Its id (slug); default: derived from the name.")

    def handle(self, *args: Any, name: str, admin: str, organization_id: str | None, **options: Any) -> None:
        user = get_user_model().objects.filter(username=admin).first()
        if user is None:
            raise CommandError(f"there is no user '{admin}'")
        try:
            organization = services.organization_create(name=name, creator=user, id=organization_id)
        except services.AccountError as exc:
            raise CommandError(str(exc)) from None
        self.stdout.write(organization.pk)
