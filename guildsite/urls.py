from django.contrib import admin
from django.http import HttpRequest, HttpResponsePermanentRedirect
from django.templatetags.static import static
from django.urls import include, path, re_path
from django.views.decorators.csrf import csrf_exempt
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView
from rest_framework.permissions import AllowAny

from guildsite.errors import json_error_view


def favicon(request: HttpRequest) -> HttpResponsePermanentRedirect:
    """Browsers ask for /favicon.ico wherever a page names no icon (an API answer opened in a tab, say)."""
    return HttpResponsePermanentRedirect(static("guildsite/favicon.svg"))


urlpatterns = [
    path("favicon.ico", favicon),
    path("admin/", admin.site.urls),
    # The documentation is public; its Authorize button takes a token for the calls made from it.
    path("api/schema/", SpectacularAPIView.as_view(permission_classes=[AllowAny]), name="schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="schema", permission_classes=[AllowAny]), name="api-docs"),
    path("catalog/", include("catalog.api.urls")),
    path("api/", include("guildsite.accounts.api.urls")),
    path("api/", include("guilds.api.urls")),
    path("accounts/", include("guildsite.accounts.web_urls")),
    path("", include("guilds.dashboard.urls")),
    path("", include("guilds.web_urls")),
    # Keep last: unknown API routes answer in the error shape even with DEBUG on, where Django
    # would otherwise show its HTML debug page instead of handler404.
    re_path(r"^(?:api|catalog)/", csrf_exempt(json_error_view(404, "not_found", "Not found."))),
]

handler404 = json_error_view(404, "not_found", "Not found.")
handler500 = json_error_view(500, "server_error", "Internal server error.")
