"""The console log's line format: the plain line, plus which guild and agent a record is about, when it says."""

from __future__ import annotations

import logging

# The `extra` keys the runtime logs with (extra={"guild_id": ...}); shown in this order.
CONTEXT_FIELDS = ("guild_id", "agent_id")


class ContextFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        context = " ".join(f"{field}={getattr(record, field)}" for field in CONTEXT_FIELDS
                           if getattr(record, field, None) not in (None, ""))
        if not context:
            return line
        # After the message's first line, so a traceback below it stays as it was.
        first, newline, rest = line.partition("\n")
        return f"{first} [{context}]{newline}{rest}"
