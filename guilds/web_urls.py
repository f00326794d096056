"""The browser pages: the chat page at / (and /chat/)."""

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.urls import path
from django.views.decorators.csrf import ensure_csrf_cookie

from guildsite.page_policy import strict_page


@strict_page
@ensure_csrf_cookie  # the page's API calls send the CSRF token with the session cookie
def chat(request: HttpRequest) -> HttpResponse:
    return render(request, "chat.html", {"auth_disabled": settings.AUTH_DISABLED})


urlpatterns = [
    path("", chat, name="chat"),
    path("chat/", chat),
]
