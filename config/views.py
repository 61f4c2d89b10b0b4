"""Site-wide views: the health answer (`/` and `/health`; `/` sends browsers to the chat) and JSON
400/404/500 pages (in the error shape of the request's path: config/http/edge_paths.py)."""

from __future__ import annotations

import logging

from django.conf import settings
from django.core.exceptions import DisallowedHost, TooManyFieldsSent, TooManyFilesSent
from django.db import DatabaseError, connection
from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.decorators import (
    api_view,
    authentication_classes,
    content_negotiation_class,
    permission_classes,
    throttle_classes,
)
from rest_framework.exceptions import NotAcceptable
from rest_framework.negotiation import DefaultContentNegotiation
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response

from django.http import JsonResponse
from django.shortcuts import redirect

from config.http.edge_paths import error_shape_for
from config.errors import json_error, too_many_parts

logger = logging.getLogger(__name__)


def database_is_reachable() -> bool:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
            cursor.fetchone()
    except DatabaseError:
        logger.exception("Health check: database unreachable")
        return False
    return True


HealthSerializer = inline_serializer(
    "Health",
    fields={
        "name": serializers.CharField(),
        "status": serializers.ChoiceField(choices=["ok", "error"]),
        "version": serializers.CharField(),
        "database": serializers.ChoiceField(choices=["ok", "unreachable"]),
    },
)


class _BrowserFriendlyNegotiation(DefaultContentNegotiation):
    """An `Accept` no renderer matches (a browser's bare `text/html`) gets the first renderer instead of a
    406: the root then redirects browsers to the chat, and a probe gets its JSON whatever it asks for."""

    def select_renderer(self, request, renderers, format_suffix=None):
        try:
            return super().select_renderer(request, renderers, format_suffix)
        except NotAcceptable:
            return renderers[0], renderers[0].media_type


@extend_schema(tags=["health"], responses={200: HealthSerializer, 503: HealthSerializer}, auth=[])
@api_view(["GET"])
@content_negotiation_class(_BrowserFriendlyNegotiation)
@authentication_classes([])
@permission_classes([AllowAny])
@throttle_classes([])
def health(request: Request) -> Response:
    """Public liveness and readiness probe: the server's name, version and database state. A browser
    opening the site's root (it asks for HTML) is sent to the chat instead; API clients get the JSON."""
    if request.path_info == "/" and "text/html" in request.META.get("HTTP_ACCEPT", ""):
        return redirect("chat")
    database_ok = database_is_reachable()
    body = {
        "name": settings.APP_NAME,
        "status": "ok" if database_ok else "error",
        "version": settings.VERSION,
        "database": "ok" if database_ok else "unreachable",
    }
    return Response(body, status=200 if database_ok else 503)


def bad_request(request, exception=None):
    """Django's own 400s (those DRF doesn't answer), e.g. a Host header not in ALLOWED_HOSTS, or a form
    with too many fields read by a plain Django view or middleware (the CSRF check)."""
    if isinstance(exception, DisallowedHost):
        return _error(request, "The Host header names a host this server does not serve.", "disallowed_host", 400)
    if isinstance(exception, (TooManyFieldsSent, TooManyFilesSent)):
        fields = too_many_parts(exception).detail
        shape = error_shape_for(request.path_info)
        if shape is not None:  # a shape without fields: their message is the error's
            return _error(request, str(next(iter(fields.values()))[0]), "invalid", 400)
        return json_error("Invalid input.", "invalid", 400, fields=fields)
    return _error(request, "Bad request.", "bad_request", 400)


def not_found(request, exception=None):
    return _error(request, "Not found.", "not_found", 404)


def server_error(request):
    return _error(request, "Internal server error.", "server_error", 500)


def _error(request, message: str, code: str, status: int) -> JsonResponse:
    shape = error_shape_for(request.path_info)
    if shape is not None:  # clients of that path read another shape (the OpenAI-compatible API's)
        return JsonResponse(shape(status, message, code), status=status)
    return json_error(message, code, status)
