"""How the OpenAPI schema describes guildsite's authentication (drf-spectacular extensions).

Imported once when the accounts app is ready; spectacular finds extensions by their target class.
"""

from __future__ import annotations

from drf_spectacular.extensions import OpenApiAuthenticationExtension


class BearerScheme(OpenApiAuthenticationExtension):
    target_class = "guildsite.identity.BearerAuthentication"
    name = "bearerAuth"

    def get_security_definition(self, auto_schema):
        return {"type": "http", "scheme": "bearer", "bearerFormat": "JWT or API key",
                "description": "An access token from POST /api/auth/token, or an organisation's API key."}


class SessionScheme(OpenApiAuthenticationExtension):
    target_class = "guildsite.identity.SessionCookieAuthentication"
    name = "sessionAuth"

    def get_security_definition(self, auto_schema):
        return {"type": "apiKey", "in": "cookie", "name": "sessionid",
                "description": "The browser's signed-in session (unsafe methods need the CSRF token)."}


class DevelopmentScheme(OpenApiAuthenticationExtension):
    target_class = "guildsite.identity.DevelopmentAuthentication"
    name = "developmentUser"

    def get_security_definition(self, auto_schema):
        return {"type": "apiKey", "in": "header", "name": "X-User-Id",
                "description": "Development only (AUTH_DISABLED=1): the user the request acts as, trusted."}
