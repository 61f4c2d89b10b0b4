"""OpenAPI descriptions of our authentication classes (drf-spectacular extensions)."""

from __future__ import annotations

from drf_spectacular.contrib.rest_framework_simplejwt import SimpleJWTScheme
from drf_spectacular.extensions import OpenApiAuthenticationExtension


class ProviderTokenScheme(OpenApiAuthenticationExtension):
    target_class = "accounts.authentication.ProviderTokenAuthentication"
    name = "providerBearer"

    def get_security_definition(self, auto_schema):
        return {
            "type": "http",
            "scheme": "bearer",
            "bearerFormat": "JWT",
            "description": "An RS256 access token from the OpenID provider (AUTH0__DOMAIN, AUTH0__AUDIENCE).",
        }


class LocalTokenScheme(SimpleJWTScheme):
    """simplejwt's scheme (`jwtAuth`) for its subclass that names expired tokens."""

    target_class = "accounts.authentication.LocalTokenAuthentication"


class ApiKeyScheme(OpenApiAuthenticationExtension):
    target_class = "accounts.authentication.ApiKeyAuthentication"
    name = "apiKey"

    def get_security_definition(self, auto_schema):
        return {
            "type": "http",
            "scheme": "bearer",
            "bearerFormat": "cdk_…",
            "description": "A personal API key (`POST /api/v1/auth/api-keys`), sent as `Authorization: Bearer cdk_…`.",
        }
