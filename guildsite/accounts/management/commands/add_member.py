"""`manage.py add_member ORGANIZATION USERNAME --role member` (as POST /api/organizations/{id}/members)."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from guildsite.accounts import services
from guildsite.accounts.models import Organization, Role


class Command(BaseCommand):
    help = "Add a user to an organisation with a role (viewer, member or admin)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("organization")
        parser.add_argument("username")
        parser.add_argument("--role", choices=Role.values, default=Role.MEMBER)

    def handle(self, *args: Any, organization: str, username: str, role: str, **options: Any) -> None:
        found = Organization.objects.filter(pk=organization).first()
        if found is None:
            raise CommandError(f"there is no organisation '{organization}'")
        try:
            services.membership_add(organization=found, username=username, role=role)
        except services.AccountError as exc:
            raise CommandError(str(exc)) from None
        self.stdout.write(f"{username} is now {role} in {organization}")
