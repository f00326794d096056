"""Who is on the other end of a socket.

Today the seed's contract names the user in the URL, and this middleware trusts it.
Tokens and organisation checks will replace this one module, not the consumers,
which read only `scope["user"]`.
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


class SeedIdentityMiddleware:
    def __init__(self, inner):
        self.inner = inner

    async def __call__(self, scope, receive, send):
        match = _SOCKET_PATH.match(scope.get("path", ""))
        if match:
            user_id = unquote(match["user_id"])
            user_name = unquote(match["user_name"]) if match["user_name"] else user_id
            scope = dict(scope, user=Identity(id=user_id, name=user_name))
        return await self.inner(scope, receive, send)
