"""ASGI entry point: HTTP (DRF, admin, chat page, static files) and the guild WebSockets."""

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "guildsite.settings")
django_http = get_asgi_application()

# Imported after Django is set up: consumers touch models.
from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from django.contrib.staticfiles.handlers import ASGIStaticFilesHandler  # noqa: E402

from guilds.routing import websocket_urlpatterns  # noqa: E402
from guildsite.identity import SocketAuthMiddleware  # noqa: E402

application = ProtocolTypeRouter(
    {
        # daphne serves no static files; the admin and the chat page need theirs.
        "http": ASGIStaticFilesHandler(django_http),
        "websocket": SocketAuthMiddleware(URLRouter(websocket_urlpatterns)),
    }
)

from guilds import process  # noqa: E402
from guildsite.startup import (  # noqa: E402
    relaunch_live_guilds_in_background,
    send_webhooks_in_background,
    serve_grpc_in_background,
    share_the_server_loop,
    sweep_external_presence_in_background,
    tick_schedules_in_background,
)

if process.role() == process.ProcessRole.WEB:  # guildsite.serve, not a test or a command importing the app
    share_the_server_loop()
    relaunch_live_guilds_in_background()
    tick_schedules_in_background()
    send_webhooks_in_background()
    serve_grpc_in_background()
    sweep_external_presence_in_background()
