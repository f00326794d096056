"""/api/guilds/{id}/files/: members upload, list, download and delete a guild's files."""

from __future__ import annotations

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from guilds.models import GuildStatus
from tests.factories import guild as make_guild

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _media(settings, tmp_path):
    settings.MEDIA_ROOT = str(tmp_path)


def upload(api, guild, *, user="user1", name="notes.txt", content=b"hello guild", **fields):
    data = {"file": SimpleUploadedFile(name, content, content_type="text/plain"), **fields}
    return api.post(f"/api/guilds/{guild.id}/files/", data, format="multipart", HTTP_X_USER_ID=user)


def test_a_member_uploads_then_downloads_the_same_bytes_as_an_attachment(api):
    guild = make_guild()
    response = upload(api, guild, file_meta='{"purpose": "demo"}')
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["filename"] == "notes.txt"
    assert body["content_length"] == len(b"hello guild")
    download = api.get(body["url"], HTTP_X_USER_ID="user1")
    assert download.status_code == 200
    assert b"".join(download.streaming_content) == b"hello guild"
    assert download["Content-Disposition"].startswith("attachment")
    listing = api.get(f"/api/guilds/{guild.id}/files/", HTTP_X_USER_ID="user1").json()
    assert [(f["name"], f["metadata"]) for f in listing] == [("notes.txt", {"purpose": "demo"})]


def test_someone_outside_the_guild_can_neither_upload_nor_read(api, problem):
    guild = make_guild()
    problem(upload(api, guild, user="stranger"), 403)
    assert upload(api, guild).status_code == 201
    problem(api.get(f"/api/guilds/{guild.id}/files/notes.txt", HTTP_X_USER_ID="stranger"), 403)


def test_bad_uploads_get_the_documented_errors(api, problem, settings):
    guild = make_guild()
    settings.GUILDSITE_FILE_MAX_BYTES = 10
    assert "over the limit" in str(problem(upload(api, guild, content=b"x" * 11), 400))
    settings.GUILDSITE_FILE_MAX_BYTES = 1024
    problem(upload(api, guild, file_meta="[1, 2]"), 400)
    problem(api.post(f"/api/guilds/{guild.id}/files/", {}, format="multipart", HTTP_X_USER_ID="user1"), 400)
    problem(upload(api, guild, name=".hidden", content=b"x"), 400)
    assert upload(api, guild).status_code == 201
    problem(upload(api, guild), 409)  # same name again
    problem(api.post("/api/guilds/nope/files/", {}, format="multipart", HTTP_X_USER_ID="user1"), 404)


def test_a_stopped_guild_takes_no_new_files_but_keeps_serving_the_old_ones(api, problem):
    guild = make_guild(status=GuildStatus.RUNNING)
    assert upload(api, guild).status_code == 201
    guild.status = GuildStatus.STOPPED
    guild.save(update_fields=["status"])
    assert "stopped" in str(problem(upload(api, guild, name="late.txt"), 409))
    assert api.get(f"/api/guilds/{guild.id}/files/notes.txt", HTTP_X_USER_ID="user1").status_code == 200


def test_deleting_a_file_removes_it(api, problem):
    guild = make_guild()
    assert upload(api, guild).status_code == 201
    assert api.delete(f"/api/guilds/{guild.id}/files/notes.txt", HTTP_X_USER_ID="user1").status_code == 204
    problem(api.get(f"/api/guilds/{guild.id}/files/notes.txt", HTTP_X_USER_ID="user1"), 404)


def test_a_name_already_taken_is_renamed_when_asked_and_the_answer_says_to_what(api, problem):
    guild = make_guild()
    assert upload(api, guild, content=b"first").json()["filename"] == "notes.txt"
    second = upload(api, guild, content=b"second", on_conflict="rename").json()
    assert second["filename"] == "notes (2).txt"
    assert upload(api, guild, content=b"third", on_conflict="rename").json()["filename"] == "notes (3).txt"
    assert upload(api, guild, name="README", on_conflict="rename").json()["filename"] == "README"
    assert upload(api, guild, name="README", on_conflict="rename").json()["filename"] == "README (2)"
    download = api.get(second["url"], HTTP_X_USER_ID="user1")
    assert b"".join(download.streaming_content) == b"second"
    problem(upload(api, guild), 409)  # without asking, as before
    problem(upload(api, guild, on_conflict="overwrite"), 400)


def test_a_long_name_taken_gives_up_the_end_of_its_stem(api):
    guild = make_guild()
    name = "n" * 251 + ".txt"  # 255 characters
    assert upload(api, guild, name=name).json()["filename"] == name
    renamed = upload(api, guild, name=name, on_conflict="rename").json()["filename"]
    assert len(renamed) == 255
    assert renamed.endswith(" (2).txt")


def test_the_name_limit_is_the_file_systems_255_bytes_not_characters(api, problem):
    guild = make_guild()
    widest = "文" * 83 + ".txt"  # 253 bytes in UTF-8: stored
    assert upload(api, guild, name=widest).json()["filename"] == widest
    assert "255 bytes" in str(problem(upload(api, guild, name="文" * 84 + ".txt"), 400))  # 256 bytes: refused
    renamed = upload(api, guild, name=widest, on_conflict="rename").json()["filename"]
    assert renamed.endswith(" (2).txt")
    assert len(renamed.encode()) <= 255
    download = api.get(f"/api/guilds/{guild.id}/files/{renamed}", HTTP_X_USER_ID="user1")
    assert b"".join(download.streaming_content) == b"hello guild"


def test_a_compound_extension_stays_whole_when_renamed(api):
    guild = make_guild()
    assert upload(api, guild, name="logs.tar.gz").json()["filename"] == "logs.tar.gz"
    assert upload(api, guild, name="logs.tar.gz", on_conflict="rename").json()["filename"] == "logs (2).tar.gz"
    assert upload(api, guild, name="v1.2.notes.txt").json()["filename"] == "v1.2.notes.txt"
    assert upload(api, guild, name="v1.2.notes.txt", on_conflict="rename").json()["filename"] == "v1.2.notes (2).txt"


def test_a_name_taken_with_an_extension_too_long_to_keep_is_still_renamed_within_the_limit(api):
    guild = make_guild()
    name = "ab." + "x" * 251  # 254 bytes, nearly all extension
    assert upload(api, guild, name=name).json()["filename"] == name
    renamed = upload(api, guild, name=name, on_conflict="rename").json()["filename"]
    assert renamed.startswith("ab.xxx")
    assert renamed.endswith(" (2)")
    assert len(renamed.encode()) <= 255
    assert upload(api, guild, name="x.TAR.GZ").json()["filename"] == "x.TAR.GZ"
    assert upload(api, guild, name="x.TAR.GZ", on_conflict="rename").json()["filename"] == "x (2).TAR.GZ"
