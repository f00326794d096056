"""Who is acting: the one place that decides it, for HTTP and WebSocket alike.

Today the seed's contract names the user (in the socket URL; for HTTP in an `X-User-Id`
header or a `user_id` parameter) and this module trusts it. Tokens and organisation checks
will replace this module, not the views and consumers, which read only `request.identity`
and `scope["user"]`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import unquote

_SOCKET_PATH = re.compile(r"^/ws/guilds/[^/]+/(?:syscomms|usercomms)/(?P<user_id>[^/]+)(?:/(?P<user_name>[^/]+))?/?$")


@dataclass(frozen=True)
class Identity:
    id: str
    name: str
    is_authenticated: bool = True


def identity_from_request(request) -> Identity | None:
    user_id = (
        request.headers.get("X-User-Id")
        or request.GET.get("user_id")
        or (request.POST.get("user_id") if request.method == "POST" and request.content_type != "application/json" else None)
    )
    return Identity(id=user_id.strip(), name=user_id.strip()) if user_id and user_id.strip() else None


class IdentityMiddleware:
    """Django middleware: sets `request.identity` (an Identity or None)."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        request.identity = identity_from_request(request)
        return self.get_response(request)


class SocketIdentityMiddleware:
    """ASGI middleware for the guild sockets: sets `scope["user"]` from the seed's URL."""

    def __init__(self, inner):
        self.inner = inner

    async def __call__(self, scope, receive, send):
        match = _SOCKET_PATH.match(scope.get("path", ""))
        if match:
            user_id = unquote(match["user_id"])
            user_name = unquote(match["user_name"]) if match["user_name"] else user_id
            scope = dict(scope, user=Identity(id=user_id, name=user_name))
        return await self.inner(scope, receive, send)
