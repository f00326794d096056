"""Identity routes under /api/."""

from __future__ import annotations

from guildsite.accounts.api import views
from guildsite.api_common import api_path

urlpatterns = [
    *api_path("auth/token", views.TokenApi, "auth-token"),
    *api_path("auth/token/refresh", views.TokenRefreshApi, "auth-token-refresh"),
    *api_path("auth/logout", views.LogoutApi, "auth-logout"),
    *api_path("auth/me", views.MeApi, "auth-me"),
    *api_path("users", views.UsersApi, "users"),
    *api_path("organizations", views.OrganizationsApi, "organizations"),
    *api_path("organizations/<str:organization_id>", views.OrganizationApi, "organization"),
    *api_path("organizations/<str:organization_id>/members", views.MembersApi, "organization-members"),
    *api_path("organizations/<str:organization_id>/members/<str:username>", views.MemberApi, "organization-member"),
    *api_path("organizations/<str:organization_id>/api-keys", views.ApiKeysApi, "organization-api-keys"),
    *api_path("organizations/<str:organization_id>/api-keys/<str:key_id>", views.ApiKeyApi, "organization-api-key"),
]
