"""Catalog routes under /catalog/, spelled as seed 000 spells them (the other slash form answers too)."""

from __future__ import annotations

from catalog.api import views
from guildsite.api_common import api_path

urlpatterns = [
    *api_path("agents", views.AgentListCreateApi, "catalog-agents"),
    *api_path("agents/<str:qualified_class_name>", views.AgentDetailApi, "catalog-agent"),
    *api_path("categories/", views.CategoryListCreateApi, "catalog-categories"),
    *api_path("categories/<str:category_id>", views.CategoryDetailApi, "catalog-category"),
    *api_path("blueprints/", views.BlueprintListCreateApi, "catalog-blueprints"),
    *api_path("blueprints/<str:blueprint_id>", views.BlueprintDetailApi, "catalog-blueprint"),
    *api_path("blueprints/<str:blueprint_id>/guilds", views.BlueprintLaunchApi, "catalog-blueprint-guilds"),
    *api_path("blueprints/<str:blueprint_id>/share/", views.BlueprintShareApi, "catalog-blueprint-share"),
    *api_path("blueprints/<str:blueprint_id>/share/<str:organization_id>", views.BlueprintUnshareApi,
              "catalog-blueprint-unshare"),
]
