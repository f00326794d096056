"""WebSocket routes (seed 000 phases 3 and 4)."""

from django.urls import path

from guilds.consumers import SysCommsConsumer, UserCommsConsumer

websocket_urlpatterns = [
    path("ws/guilds/<str:guild_id>/syscomms/<str:user_id>", SysCommsConsumer.as_asgi()),
    path("ws/guilds/<str:guild_id>/usercomms/<str:user_id>/<str:user_name>", UserCommsConsumer.as_asgi()),
]
