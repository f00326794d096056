"""`python -m guildsite.serve [daphne's arguments]`: the web process. It says it is one (guilds.process), then
runs daphne, whose loading of guildsite.asgi then shares daphne's loop and relaunches the live guilds."""

from __future__ import annotations

import os
import sys

from guilds import process


def main() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "guildsite.settings")
    process.set_role(process.ProcessRole.WEB)
    from daphne.cli import CommandLineInterface

    sys.argv[0] = "daphne"
    CommandLineInterface.entrypoint()


if __name__ == "__main__":
    main()
