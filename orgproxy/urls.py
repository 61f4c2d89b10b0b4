"""Included at the site root (config/urls.py): the paths existing Claire clients call, exactly
as the reference serves them (no trailing slashes), plus the same views under /api/v1/org/.
The alias is left out of the OpenAPI schema, which documents each operation once."""

from __future__ import annotations

from django.urls import path

from orgproxy import api

urlpatterns = [
    path("session", api.SessionApi.as_view(), name="org-session"),
    path("session/<str:session_id>/renew", api.SessionRenewApi.as_view(), name="org-session-renew"),
    path("session/<str:session_id>", api.SessionDetailApi.as_view(), name="org-session-detail"),
    path("bots", api.BotsApi.as_view(), name="org-bots"),
    path("api/v1/org/session", api.SessionApi.as_view(schema=None)),
    path("api/v1/org/session/<str:session_id>/renew", api.SessionRenewApi.as_view(schema=None)),
    path("api/v1/org/session/<str:session_id>", api.SessionDetailApi.as_view(schema=None)),
    path("api/v1/org/bots", api.BotsApi.as_view(schema=None)),
]
