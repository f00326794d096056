from django.urls import path

from guilds.dashboard import catalog_pages, runs, views

urlpatterns = [
    path("", views.home, name="home"),
    path("dashboard/", views.dashboard, name="dashboard"),
    path("dashboard/guilds/<str:guild_id>/", views.guild_page, name="dashboard-guild"),
    path("dashboard/guilds/<str:guild_id>/agents/", views.guild_agents, name="dashboard-guild-agents"),
    path("dashboard/guilds/<str:guild_id>/timeline/", views.guild_timeline, name="dashboard-guild-timeline"),
    path("dashboard/runs/", runs.runs_page, name="dashboard-runs"),
    path("dashboard/runs/<str:run_id>/", runs.run_page, name="dashboard-run"),
    path("dashboard/catalog/", catalog_pages.catalog_page, name="dashboard-catalog"),
    path("dashboard/catalog/blueprints/new/", catalog_pages.blueprint_new, name="dashboard-blueprint-new"),
    path("dashboard/catalog/blueprints/<str:blueprint_id>/", catalog_pages.blueprint_page, name="dashboard-blueprint"),
]
