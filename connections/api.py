"""The connections API: list, connect (a token, or OAuth's authorize URL), disconnect; the callback page."""

from __future__ import annotations

from django.conf import settings
from django.shortcuts import render
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema, inline_serializer
from rest_framework import serializers, status
from rest_framework.exceptions import ValidationError
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from config.errors import error_response
from connections import selectors, services
from connections.models import Connection


class ConnectionSerializer(serializers.Serializer):
    """A connection as its user sees it: never a token."""

    id = serializers.IntegerField()
    integration = inline_serializer("ConnectionIntegration", {"id": serializers.IntegerField(),
                                                              "name": serializers.CharField()})  # fmt: skip
    status = serializers.ChoiceField(choices=Connection.Status.choices)
    scopes = serializers.ListField(child=serializers.CharField())
    expires_at = serializers.DateTimeField(allow_null=True)
    connected_at = serializers.DateTimeField()

    def to_representation(self, instance: Connection) -> dict:
        when = serializers.DateTimeField()
        return {
            "id": instance.pk,
            "integration": {"id": instance.integration_id, "name": str(instance.integration)},
            "status": instance.status,
            "scopes": instance.scopes.split() if instance.scopes else [],
            "expires_at": when.to_representation(instance.expires_at) if instance.expires_at else None,
            "connected_at": when.to_representation(instance.connected_at),
        }


@extend_schema(tags=["connections"])
class ConnectionsApi(APIView):
    pagination_class = None

    @extend_schema(responses={200: ConnectionSerializer(many=True)})
    def get(self, request: Request) -> Response:
        """The signed-in user's connections to integrations: status, scopes, expiry. Never a token."""
        return Response(ConnectionSerializer(selectors.connection_list(user=request.user), many=True).data)


@extend_schema(tags=["connections"])
class ConnectionApi(APIView):
    @extend_schema(parameters=[OpenApiParameter("connection_id", int, OpenApiParameter.PATH)], responses={204: None})
    def delete(self, request: Request, connection_id: str) -> Response:
        """Disconnect: the tokens are revoked at the server when it offers revocation (RFC 7009), then deleted."""
        connection = selectors.connection_get(user=request.user, connection_id=connection_id)
        if connection is None:
            return error_response("No such connection.", "not_found", status.HTTP_404_NOT_FOUND)
        services.connection_delete(connection=connection)
        return Response(status=status.HTTP_204_NO_CONTENT)


@extend_schema(tags=["connections"])
class ConnectApi(APIView):
    class InputSerializer(serializers.Serializer):
        token = serializers.CharField(required=False, trim_whitespace=True, max_length=services.MAX_TOKEN_CHARS,
                                      help_text="per_user_token integrations: your own token for its server.")  # fmt: skip

    @extend_schema(
        parameters=[OpenApiParameter("integration_id", int, OpenApiParameter.PATH)],
        request=InputSerializer,
        responses={
            200: inline_serializer("AuthorizeUrl", {"authorize_url": serializers.URLField()}),
            201: ConnectionSerializer,
            400: OpenApiResponse(description="Not a per-user integration, a bad token, or the server's "
                                             "authorization can't be discovered (the message says why)."),
            404: OpenApiResponse(description="No such integration (yours or the organization's)."),
        },
    )  # fmt: skip
    def post(self, request: Request, integration_id: str) -> Response:
        """Connect yourself to an integration: `oauth` answers the URL to open in a browser (the
        callback then finishes it); `per_user_token` takes `{"token"}` and answers 201."""
        integration = selectors.integration_for_connect(user=request.user, integration_id=integration_id)
        if integration is None:
            return error_response("No such integration.", "not_found", status.HTTP_404_NOT_FOUND)
        serializer = self.InputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        try:
            if integration.auth == "per_user_token":
                if "token" not in serializer.validated_data:
                    raise services.ConnectError("Give your token for this integration.", field="token")
                connection = services.token_connect(user=request.user, integration=integration,
                                                    token=serializer.validated_data["token"])  # fmt: skip
                return Response(ConnectionSerializer(connection).data, status=status.HTTP_201_CREATED)
            base = settings.CONNECTIONS_PUBLIC_URL or request.build_absolute_uri("/")
            url = services.oauth_start(user=request.user, integration=integration, base_url=base)
        except services.ConnectError as exc:
            raise ValidationError({exc.field or "non_field_errors": [exc.message]}) from None
        return Response({"authorize_url": url})


@never_cache
@require_GET
def oauth_callback(request):
    """Where the authorization server sends the browser back: the code is exchanged, a page says how
    it went (the chat's popup closes itself on it)."""
    try:
        connection = services.oauth_finish(state=request.GET.get("state", ""), code=request.GET.get("code", ""),
                                           error=request.GET.get("error", ""))  # fmt: skip
    except services.ConnectError as exc:
        return render(request, "connections/callback.html", {"ok": False, "message": exc.message}, status=400)
    return render(request, "connections/callback.html", {"ok": True, "integration": str(connection.integration)})
