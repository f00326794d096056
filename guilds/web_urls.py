"""The chat page at /chat/ (/ is the dashboard's: guilds.dashboard)."""

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.urls import path
from django.views.decorators.csrf import ensure_csrf_cookie

from guildsite.accounts.names import account_display_name
from guildsite.page_policy import strict_page


@strict_page
@ensure_csrf_cookie  # the page's API calls send the CSRF token with the session cookie
def chat(request: HttpRequest) -> HttpResponse:
    display_name = account_display_name(request.user) if request.user.is_authenticated else ""
    return render(request, "chat.html", {"auth_disabled": settings.AUTH_DISABLED, "display_name": display_name})


urlpatterns = [
    path("chat/", chat, name="chat"),
]
