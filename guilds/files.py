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


def _safe_name(name: str) -> str:
    cleaned = unicodedata.normalize("NFC", os.path.basename((name or "").replace("\\", "/"))).strip()
    if not cleaned or cleaned in {".", ".."} or cleaned.startswith(".") or any(ord(c) < 32 for c in cleaned):
        raise FileRejected(f"'{name}' is not a usable file name")
    if len(cleaned) > 255:
        raise FileRejected("file names are limited to 255 characters")
    return cleaned


def file_path(guild_id: str, name: str) -> Path:
    return Path(settings.MEDIA_ROOT) / guild_id / name


def file_url(guild_id: str, name: str) -> str:
    from django.urls import reverse

    return reverse("guild-file", kwargs={"guild_id": guild_id, "name": name})


def guild_file_upload(*, guild: Guild, user_id: str, upload: UploadedFile, metadata: dict[str, Any]) -> GuildFile:
    if guild.status == GuildStatus.STOPPED:
        raise GuildIsStopped(f"guild {guild.id} is stopped: it takes no new files")
    limit = settings.GUILDSITE_FILE_MAX_BYTES
    if upload.size > limit:
        raise FileRejected(f"file of {upload.size} bytes is over the limit of {limit} bytes")
    name = _safe_name(upload.name)
    target = file_path(guild.id, name)
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
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
    except IntegrityError:
        raise FileExists(f"a file named '{name}' already exists in this guild") from None
    return record


def guild_file_delete(*, record: GuildFile) -> None:
    file_path(record.guild_id, record.name).unlink(missing_ok=True)
    record.delete()
