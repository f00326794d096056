"""Guild routes under /api/ (the original system's REST prefix)."""

from __future__ import annotations

from guilds.api import views
from guildsite.api_common import api_path

urlpatterns = [
    *api_path("guilds", views.GuildListApi, "guild-list"),
    *api_path("guilds/<str:guild_id>", views.GuildDetailApi, "guild-detail"),
]
