"""Files members upload to a guild, so the `url` in a FilesWithTextFormat message resolves.

Stored under MEDIA_ROOT/<guild id>/, size-limited (GUILDSITE_FILE_MAX_BYTES). Who may list, read,
upload and delete them is guildsite.permissions' `guild_files_check` (the guild's members and the
organisation's admins); the views call it before these.
"""

from __future__ import annotations

import os
import tempfile
import unicodedata
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.files.uploadedfile import UploadedFile
from django.db import IntegrityError, transaction

from guilds.models import Guild, GuildFile, GuildStatus


class FileRejected(ValueError):
    """The upload cannot be stored; the message says why."""


class FileExists(FileRejected):
    pass


class GuildIsStopped(FileRejected):
    """A stopped guild is final: nothing there could read a new file."""


MAX_NAME_BYTES = 255  # what file systems take, counted in UTF-8 bytes
# Kept whole when a taken name is renamed: "logs.tar.gz" becomes "logs (2).tar.gz", not "logs.tar (2).gz".
COMPOUND_EXTENSIONS = (".tar.gz", ".tar.bz2", ".tar.xz", ".tar.zst")


def _safe_name(name: str) -> str:
    cleaned = unicodedata.normalize("NFC", os.path.basename((name or "").replace("\\", "/"))).strip()
    if not cleaned or cleaned in {".", ".."} or cleaned.startswith(".") or any(ord(c) < 32 for c in cleaned):
        raise FileRejected(f"'{name}' is not a usable file name")
    if len(cleaned.encode()) > MAX_NAME_BYTES:
        raise FileRejected(f"file names are limited to {MAX_NAME_BYTES} bytes in UTF-8")
    return cleaned


def file_path(guild_id: str, name: str) -> Path:
    return Path(settings.MEDIA_ROOT) / guild_id / name


def file_url(guild_id: str, name: str) -> str:
    from django.urls import reverse

    return reverse("guild-file", kwargs={"guild_id": guild_id, "name": name})


RENAME_TRIES = 100  # "notes (2).txt" … "notes (100).txt": past that, a conflict like any other


def guild_file_upload(*, guild: Guild, user_id: str, upload: UploadedFile, metadata: dict[str, Any],
                      rename_on_conflict: bool = False) -> GuildFile:
    """Store the file under its name; with `rename_on_conflict`, a name already taken becomes "name (2).ext"
    (the first free one), so sending a file again never fails on its name."""
    if guild.status == GuildStatus.STOPPED:
        raise GuildIsStopped(f"guild {guild.id} is stopped: it takes no new files")
    limit = settings.GUILDSITE_FILE_MAX_BYTES
    if upload.size > limit:
        raise FileRejected(f"file of {upload.size} bytes is over the limit of {limit} bytes")
    name = _safe_name(upload.name)
    for candidate in _candidates(name, RENAME_TRIES if rename_on_conflict else 1):
        try:
            return _store(guild, candidate, user_id, upload, metadata)
        except IntegrityError:
            continue
    raise FileExists(f"a file named '{name}' already exists in this guild")


def _split_extension(name: str) -> tuple[str, str]:
    compound = next((e for e in COMPOUND_EXTENSIONS if name.lower().endswith(e) and len(name) > len(e)), None)
    if compound is not None:
        return name[:-len(compound)], name[-len(compound):]
    stem, dot, extension = name.rpartition(".")
    return (stem, dot + extension) if dot and stem else (name, "")


def _candidates(name: str, count: int) -> list[str]:
    stem, extension = _split_extension(name)
    made = [name]
    for n in range(2, count + 1):
        number = f" ({n})"
        # A long name gives up the end of its stem, never half a character; an extension too long to leave a
        # stem room is treated as part of the stem.
        kept_stem, kept_extension = (stem, extension) if len((number + extension).encode()) < MAX_NAME_BYTES \
            else (name, "")
        room = MAX_NAME_BYTES - len((number + kept_extension).encode())
        made.append(kept_stem.encode()[:room].decode(errors="ignore").rstrip() + number + kept_extension)
    return made


def _store(guild: Guild, name: str, user_id: str, upload: UploadedFile, metadata: dict[str, Any]) -> GuildFile:
    target = file_path(guild.id, name)
    target.parent.mkdir(parents=True, exist_ok=True)
    with transaction.atomic():
        record = GuildFile.objects.create(
            guild=guild, name=name, size=upload.size, uploaded_by=user_id, metadata=metadata,
            content_type=upload.content_type or "application/octet-stream",
        )
        # Written next to the target and renamed: a reader never sees half a file.
        with tempfile.NamedTemporaryFile(dir=target.parent, delete=False) as partial:
            for chunk in upload.chunks():
                partial.write(chunk)
        os.replace(partial.name, target)
    return record


def guild_file_delete(*, record: GuildFile) -> None:
    file_path(record.guild_id, record.name).unlink(missing_ok=True)
    record.delete()
