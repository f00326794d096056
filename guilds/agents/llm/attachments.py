"""What the model is told about a FilesWithTextFormat message's files: small text files whole, others by name.

Files are the guild's uploads (guilds.files), found by name; a name that is not one of them is only named,
so a message cannot make the agent read anything else on the server.
"""

from __future__ import annotations

import os
from typing import Any

from guilds.files import file_path
from guilds.models import GuildFile
from guilds.runtime.store import on_db_threads

TEXT_FILE_MAX_BYTES = 64 * 1024
_TEXT_TYPES = ("text/", "application/json", "application/xml", "application/x-yaml", "application/yaml")


def _is_text(data: bytes) -> str | None:
    if b"\x00" in data:
        return None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return None


@on_db_threads
def describe_files(guild_id: str, files: list[Any]) -> str:
    """The files as text for the prompt ('' for none)."""
    parts: list[str] = []
    for entry in files:
        if not isinstance(entry, dict):
            continue
        shown = str(entry.get("name") or entry.get("url") or "file")
        name = os.path.basename(str(entry.get("name") or "").replace("\\", "/"))
        record = GuildFile.objects.filter(guild_id=guild_id, name=name).first() if name else None
        content = None
        if record is not None and record.size <= TEXT_FILE_MAX_BYTES and (
                record.content_type.startswith(_TEXT_TYPES) or record.content_type == "application/octet-stream"):
            try:
                content = _is_text(file_path(guild_id, record.name).read_bytes()[: TEXT_FILE_MAX_BYTES + 1])
            except OSError:
                content = None
        if content is not None:
            parts.append(f"--- file: {shown} ---\n{content}\n--- end of {shown} ---")
        else:
            parts.append(f"(attached file, not shown: {shown})")
    return "\n\n".join(parts)
