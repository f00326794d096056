"""What the site's log shows: each event once, and which guild or agent it is about."""

from __future__ import annotations

import io
import logging
from contextlib import contextmanager

import pytest

pytestmark = pytest.mark.django_db


@contextmanager
def console_output(logger_name: str):
    """What the site's console handlers write for records of `logger_name` (its own and its parents')."""
    written = io.StringIO()
    handlers, logger = [], logging.getLogger(logger_name)
    while logger is not None:
        handlers += [h for h in logger.handlers if type(h) is logging.StreamHandler]
        logger = logger.parent if logger.propagate else None
    streams = [handler.setStream(written) for handler in handlers]
    try:
        yield written
    finally:
        for handler, stream in zip(handlers, streams, strict=True):
            handler.setStream(stream)


def test_a_404_is_logged_once(client, settings):
    # DEBUG on, as under `make run`: Django's own console handler only writes then.
    settings.DEBUG = True
    with console_output("django.request") as written:
        assert client.get("/api/no-such-thing").status_code == 404
    lines = [line for line in written.getvalue().splitlines() if "/api/no-such-thing" in line]
    assert len(lines) == 1, lines
    assert "WARNING django.request Not Found: /api/no-such-thing" in lines[0]


def test_a_status_change_line_says_which_guild_and_agent():
    with console_output("guilds.runtime.manager") as written:
        logger = logging.getLogger("guilds.runtime.manager")
        logger.warning("guild status %s -> %s", "STARTING", "RUNNING", extra={"guild_id": "g-42"})
        logger.warning("agent failed to start", extra={"guild_id": "g-42", "agent_id": "echo-7"})
        logger.warning("a line about nothing in particular")
    status, failure, plain = written.getvalue().splitlines()
    assert status.endswith("guild status STARTING -> RUNNING [guild_id=g-42]")
    assert failure.endswith("agent failed to start [guild_id=g-42 agent_id=echo-7]")
    assert plain.endswith("a line about nothing in particular")


def test_the_guild_goes_after_the_message_not_after_its_traceback():
    with console_output("guilds.runtime.manager") as written:
        try:
            raise RuntimeError("boom")
        except RuntimeError:
            logging.getLogger("guilds.runtime.manager").exception("manager failed", extra={"guild_id": "g-42"})
    first, *traceback = written.getvalue().splitlines()
    assert first.endswith("manager failed [guild_id=g-42]")
    assert traceback[-1] == "RuntimeError: boom"
