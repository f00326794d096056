"""`manage.py create_user USERNAME`: a user who signs in with a password (as POST /api/users)."""

from __future__ import annotations

import getpass
import sys
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from guildsite.accounts import services


class Command(BaseCommand):
    help = "Create a user. The password comes from --password-stdin, or is asked for."
    stealth_options = ("stdin",)  # call_command(..., stdin=...) as Django's createsuperuser takes it

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("username")
        parser.add_argument("--email", default="")
        parser.add_argument("--staff", action="store_true", help="Site staff (may register agent classes, create users).")
        parser.add_argument("--password-stdin", action="store_true", help="Read the password from standard input.")

    def handle(self, *args: Any, username: str, email: str, staff: bool, password_stdin: bool, **options: Any) -> None:
        stdin = options.get("stdin") or sys.stdin
        password = stdin.readline().rstrip("\n") if password_stdin else getpass.getpass(f"Password for {username}: ")
        try:
            user = services.user_create(username=username, password=password, email=email, is_staff=staff)
        except services.AccountError as exc:
            raise CommandError(str(exc)) from None
        self.stdout.write(f"created user {user.get_username()}" + (" (staff)" if staff else ""))
