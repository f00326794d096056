"""`manage.py create_api_key ORGANIZATION --user USERNAME --scope write` (as POST …/api-keys); prints the key once."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.utils import timezone

from guildsite.accounts import services
from guildsite.accounts.models import Organization, Scope


class Command(BaseCommand):
    help = "Create an API key acting as a user in an organisation; the key is printed this once."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("organization")
        parser.add_argument("--user", required=True, help="The user the key acts as (a member of the organisation).")
        parser.add_argument("--name", default="", help="What the key is for.")
        parser.add_argument("--scope", action="append", choices=Scope.values, help="read or write (repeatable).")
        parser.add_argument("--expires-in-days", type=int, help="Default: never expires.")

    def handle(self, *args: Any, organization: str, user: str, name: str, scope: list[str] | None,
               expires_in_days: int | None, **options: Any) -> None:
        found = Organization.objects.filter(pk=organization).first()
        account = get_user_model().objects.filter(username=user).first()
        if found is None or account is None:
            raise CommandError(f"no organisation '{organization}'" if found is None else f"no user '{user}'")
        if expires_in_days is not None and expires_in_days < 1:
            raise CommandError("--expires-in-days must be at least 1 (leave it out for a key that does not expire)")
        expires_at = timezone.now() + timedelta(days=expires_in_days) if expires_in_days else None
        try:
            _, key = services.api_key_create(organization=found, created_by=account, name=name,
                                             scopes=scope or [Scope.READ], expires_at=expires_at)
        except services.AccountError as exc:
            raise CommandError(str(exc)) from None
        self.stdout.write(key)
