"""The organization server's endpoints, at the site root where Claire clients call them:
`POST/GET /session`, `POST /session/{id}/renew`, `DELETE /session/{id}`, `GET /bots`."""

from __future__ import annotations

import re

from django.conf import settings
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import serializers, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from config.errors import ErrorSerializer, error_response
from orgproxy import claire_client, selectors, services
from orgproxy.serializers import (
    SESSION_ID_PATTERN,
    BotDefinitionSerializer,
    ClientSessionResponseSerializer,
    SessionCreateInputSerializer,
    SessionListInputSerializer,
    SessionListSerializer,
)

NOT_CONFIGURED = "The organization server is not configured: CLAIRE__API_KEY is not set."
SESSION_NOT_FOUND = "Chat session not found."
BOT_NOT_FOUND = "Bot not found."

_SESSION_ID = re.compile(SESSION_ID_PATTERN, re.IGNORECASE)


def _error(description: str) -> OpenApiResponse:
    return OpenApiResponse(ErrorSerializer, description=description)


_UPSTREAM_ERRORS = {
    401: _error("Not signed in (no, invalid or expired bearer token)."),
    502: _error("Claire failed: unreachable, an error status, or an unexpected body."),
    503: _error(NOT_CONFIGURED),
    504: _error("Claire did not answer in time."),
}


def _session_id(raw: str) -> str:
    if not _SESSION_ID.match(raw):
        raise serializers.ValidationError({"session_id": ["Must be a session id: session-<uuid>."]})
    return raw.lower()


def failure(exc: Exception, *, method: str, failure_messages: dict[str, str]) -> Response | None:
    """The answer to an organization server failure (Claire's, or a bot or session not found), in
    the reference's words for the request's method; None for any other exception."""
    if isinstance(exc, claire_client.ClaireNotConfigured):
        return error_response(NOT_CONFIGURED, exc.code, exc.http_status)
    if isinstance(exc, claire_client.ClaireError):
        return error_response(failure_messages.get(method, "The Claire API failed."), exc.code, exc.http_status)
    if isinstance(exc, services.SessionNotFound):
        return error_response(SESSION_NOT_FOUND, "session_not_found", status.HTTP_404_NOT_FOUND)
    if isinstance(exc, services.BotNotFound):
        return error_response(BOT_NOT_FOUND, "bot_not_found", status.HTTP_404_NOT_FOUND)
    return None


class _OrgProxyApi(APIView):
    """Maps Claire failures to the reference's messages: `failure_messages[method]`."""

    failure_messages: dict[str, str] = {}

    def initial(self, request: Request, *args, **kwargs) -> None:
        super().initial(request, *args, **kwargs)  # authentication first: 401 before 503
        if not settings.CLAIRE_API_KEY:
            raise claire_client.ClaireNotConfigured(NOT_CONFIGURED)

    def handle_exception(self, exc: Exception) -> Response:
        answer = failure(exc, method=self.request.method, failure_messages=self.failure_messages)
        return answer if answer is not None else super().handle_exception(exc)


@extend_schema(tags=["organization server"])
class SessionApi(_OrgProxyApi):
    failure_messages = {"POST": "Could not create chat session.", "GET": "Could not list chat sessions."}

    @extend_schema(
        operation_id="org_session_create",
        parameters=[
            OpenApiParameter(
                "bot_id",
                str,
                OpenApiParameter.QUERY,
                required=True,
                pattern=r"^[bB][oO][tT]-[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$",
                description="One of the organization's bots, `bot-<uuid>` (any letter case).",
            )
        ],
        request=None,
        responses={
            200: ClientSessionResponseSerializer,
            400: _error("Malformed `bot_id`."),
            404: _error("Not one of the organization's bots."),
            **_UPSTREAM_ERRORS,
        },
    )
    def post(self, request: Request) -> Response:
        """Create a Claire chat session for the signed-in user with one of the organization's bots."""
        params = SessionCreateInputSerializer(data=request.query_params)
        params.is_valid(raise_exception=True)
        return Response(services.session_create(user=request.user, bot_id=params.validated_data["bot_id"]))

    @extend_schema(
        operation_id="org_session_list",
        parameters=[
            OpenApiParameter(
                "cursor", str, OpenApiParameter.QUERY, description="`cursor.cursor_id` of the previous page."
            )
        ],
        responses={200: SessionListSerializer, 400: _error("Malformed cursor."), **_UPSTREAM_ERRORS},
    )
    def get(self, request: Request) -> Response:
        """The signed-in user's chat sessions with the organization's bots, a page at a time."""
        params = SessionListInputSerializer(data=request.query_params)
        params.is_valid(raise_exception=True)
        return Response(services.session_list(user=request.user, cursor=params.validated_data.get("cursor")))


_SESSION_ID_PARAMETER = OpenApiParameter(
    "session_id",
    str,
    OpenApiParameter.PATH,
    pattern=r"^[sS][eE][sS][sS][iI][oO][nN]-[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$",
    description="`session-<uuid>`, one of the signed-in user's sessions.",
)


@extend_schema(tags=["organization server"])
class SessionRenewApi(_OrgProxyApi):
    failure_messages = {"POST": "Could not renew chat session."}

    @extend_schema(
        operation_id="org_session_renew",
        parameters=[_SESSION_ID_PARAMETER],
        request=None,
        responses={
            200: ClientSessionResponseSerializer,
            400: _error("Malformed `session_id`."),
            404: _error("No such session of the signed-in user."),
            **_UPSTREAM_ERRORS,
        },
    )
    def post(self, request: Request, session_id: str) -> Response:
        """Renew one of the signed-in user's sessions (a fresh session token)."""
        return Response(services.session_renew(user=request.user, session_id=_session_id(session_id)))


@extend_schema(tags=["organization server"])
class SessionDetailApi(_OrgProxyApi):
    failure_messages = {"DELETE": "Could not delete chat session."}

    @extend_schema(
        operation_id="org_session_delete",
        parameters=[_SESSION_ID_PARAMETER],
        responses={
            200: OpenApiResponse(OpenApiTypes.OBJECT, description="`{}`: the session is deleted."),
            400: _error("Malformed `session_id`."),
            404: _error("No such session of the signed-in user."),
            **_UPSTREAM_ERRORS,
        },
    )
    def delete(self, request: Request, session_id: str) -> Response:
        """Delete one of the signed-in user's sessions."""
        services.session_delete(user=request.user, session_id=_session_id(session_id))
        return Response({})


@extend_schema(tags=["organization server"])
class BotsApi(_OrgProxyApi):
    failure_messages = {"GET": "Could not get bots."}

    @extend_schema(
        operation_id="org_bots_list",
        responses={200: BotDefinitionSerializer(many=True), **_UPSTREAM_ERRORS},
    )
    def get(self, request: Request) -> Response:
        """The organization's bots (cached for `CLAIRE__BOTS_CACHE_TTL` seconds)."""
        return Response(selectors.bots_list())
