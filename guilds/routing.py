"""WebSocket routes (seed 000 phases 3 and 4, seed 004's live socket, seed 003's external agents), and answers for
paths that fit none."""

from django.urls import path, re_path

from guilds.consumers import BadSocketPath, SysCommsConsumer, UnknownSocketPath, UserCommsConsumer
from guilds.sockets.agent_socket import AgentSocketConsumer
from guilds.sockets.live_socket import LiveSocketConsumer

websocket_urlpatterns = [
    path("api/ws", LiveSocketConsumer.as_asgi()),
    re_path(r"^ws/agents/?$", AgentSocketConsumer.as_asgi()),
    path("ws/guilds/<str:guild_id>/syscomms/<str:user_id>", SysCommsConsumer.as_asgi()),
    path("ws/guilds/<str:guild_id>/usercomms/<str:user_id>/<str:user_name>", UserCommsConsumer.as_asgi()),
    # A user id or name holding '/' (sent encoded as %2F) reaches here decoded: a bad id, not a server error.
    re_path(r"^ws/guilds/[^/]+/(?:syscomms|usercomms)/", BadSocketPath.as_asgi()),
    re_path(r"", UnknownSocketPath.as_asgi()),
]
