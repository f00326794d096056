"""Guild routes under /api/ (the original system's REST prefix)."""

from __future__ import annotations

from guilds.api import control, views
from guildsite.api_common import api_path

urlpatterns = [
    *api_path("guilds", views.GuildListApi, "guild-list"),
    *api_path("guilds/<str:guild_id>", views.GuildDetailApi, "guild-detail"),
    *api_path("guilds/<str:guild_id>/stop", control.GuildStopApi, "guild-stop"),
    *api_path("guilds/<str:guild_id>/relaunch", control.GuildRelaunchApi, "guild-relaunch"),
    *api_path("guilds/<str:guild_id>/files/", control.GuildFilesApi, "guild-files"),
    *api_path("guilds/<str:guild_id>/files/<str:name>", control.GuildFileApi, "guild-file"),
    *api_path("guilds/<str:guild_id>/<str:user_id>/messages", control.UserMessagesApi, "guild-user-messages"),
]
