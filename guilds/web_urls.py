"""The browser pages: the chat page at / (and /chat/)."""

from django.urls import path
from django.views.generic import TemplateView

chat = TemplateView.as_view(template_name="chat.html")

urlpatterns = [
    path("", chat, name="chat"),
    path("chat/", chat),
]
