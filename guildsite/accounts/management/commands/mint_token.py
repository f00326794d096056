"""`manage.py mint_token USERNAME`: print an access token for a user (scripts and benchmarks need many)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError, CommandParser

from guildsite.accounts.tokens import access_token_encode


class Command(BaseCommand):
    help = "Print an access token (a JWT) for an existing user, without their password."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("usernames", nargs="+", metavar="username")
        parser.add_argument("--minutes", type=int, default=30, help="How long the token lasts (default 30).")

    def handle(self, *args: Any, usernames: list[str], minutes: int, **options: Any) -> None:
        if minutes < 1:
            raise CommandError("--minutes must be at least 1")
        users = {u.get_username(): u for u in get_user_model().objects.filter(username__in=usernames, is_active=True)}
        missing = [name for name in usernames if name not in users]
        if missing:
            raise CommandError(f"no active user named {', '.join(missing)}")
        for name in usernames:
            token, _ = access_token_encode(user=users[name], lifetime=timedelta(minutes=minutes))
            self.stdout.write(token)
