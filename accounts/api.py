"""The auth endpoints: register, login, refresh, logout, me, password, personal API keys."""

from __future__ import annotations

from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import status
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView
from rest_framework_simplejwt.exceptions import TokenError

from accounts import services
from accounts.serializers import (
    ApiKeyCreateSerializer,
    ApiKeySerializer,
    IssuedApiKeySerializer,
    LoginSerializer,
    PasswordChangeSerializer,
    RefreshTokenSerializer,
    RegisterSerializer,
    TokenPairSerializer,
    UserSerializer,
)
from accounts.throttles import (
    LoginEmailThrottle,
    LoginIpThrottle,
    PasswordChangeIpThrottle,
    PasswordChangeUserThrottle,
    RegisterIpThrottle,
)
from config import untrusted
from config.errors import error_response

INVALID_CREDENTIALS = "Invalid email or password."
INVALID_REFRESH_TOKEN = "Refresh token is invalid, expired or already used."


class _PublicApi(APIView):
    # Credentials travel in the body; no session or header authentication (and so no CSRF) here.
    authentication_classes: list = []
    permission_classes = [AllowAny]


def _invalid_refresh_token() -> Response:
    return error_response(INVALID_REFRESH_TOKEN, "token_not_valid", status.HTTP_401_UNAUTHORIZED)


@extend_schema(tags=["auth"])
class RegisterApi(_PublicApi):
    throttle_classes = [RegisterIpThrottle]

    @extend_schema(request=RegisterSerializer, responses={201: UserSerializer}, auth=[])
    def post(self, request: Request) -> Response:
        """Create an email-and-password account."""
        serializer = RegisterSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        user = services.user_create(**serializer.validated_data)
        return Response(UserSerializer(user).data, status=status.HTTP_201_CREATED)


@extend_schema(tags=["auth"])
class LoginApi(_PublicApi):
    throttle_classes = [LoginIpThrottle, LoginEmailThrottle]

    @extend_schema(
        request=LoginSerializer,
        responses={200: TokenPairSerializer, 401: OpenApiResponse(description=INVALID_CREDENTIALS)},
        auth=[],
    )
    def post(self, request: Request) -> Response:
        """Exchange email and password for an access and a refresh token."""
        serializer = LoginSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        user = services.user_authenticate(request=request, **serializer.validated_data)
        if user is None:
            return error_response(INVALID_CREDENTIALS, "invalid_credentials", status.HTTP_401_UNAUTHORIZED)
        return Response(services.token_pair_issue(user=user))


@extend_schema(tags=["auth"])
class RefreshApi(_PublicApi):
    @extend_schema(
        request=RefreshTokenSerializer,
        responses={200: TokenPairSerializer, 401: OpenApiResponse(description=INVALID_REFRESH_TOKEN)},
        auth=[],
    )
    def post(self, request: Request) -> Response:
        """Trade a refresh token for a new pair. The refresh token given stops working."""
        serializer = RefreshTokenSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        try:
            pair = services.token_pair_rotate(**serializer.validated_data)
        except TokenError:
            return _invalid_refresh_token()
        return Response(pair)


@extend_schema(tags=["auth"])
class LogoutApi(_PublicApi):
    @extend_schema(
        request=RefreshTokenSerializer,
        responses={204: None, 401: OpenApiResponse(description=INVALID_REFRESH_TOKEN)},
        auth=[],
    )
    def post(self, request: Request) -> Response:
        """Revoke a refresh token."""
        serializer = RefreshTokenSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        try:
            services.token_revoke(**serializer.validated_data)
        except TokenError:
            return _invalid_refresh_token()
        return Response(status=status.HTTP_204_NO_CONTENT)


@extend_schema(tags=["auth"])
class MeApi(APIView):
    @extend_schema(responses={200: UserSerializer})
    def get(self, request: Request) -> Response:
        """The signed-in user."""
        return Response(UserSerializer(request.user).data)


@extend_schema(tags=["auth"])
class PasswordChangeApi(APIView):
    throttle_classes = [PasswordChangeIpThrottle, PasswordChangeUserThrottle]

    @extend_schema(request=PasswordChangeSerializer, responses={200: TokenPairSerializer})
    def post(self, request: Request) -> Response:
        """Change the password. Every refresh token of the user stops working and their open
        websockets close; the answer is a fresh pair for this client."""
        serializer = PasswordChangeSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        pair = services.user_password_change(user=request.user, **serializer.validated_data)
        return Response(pair)


@extend_schema(tags=["auth"])
class ApiKeysApi(APIView):
    pagination_class = None

    @extend_schema(responses={200: ApiKeySerializer(many=True)})
    def get(self, request: Request) -> Response:
        """The signed-in user's API keys (not revoked): name, prefix, dates. Never the secret."""
        return Response(ApiKeySerializer(services.api_key_list(user=request.user), many=True).data)

    @extend_schema(request=ApiKeyCreateSerializer, responses={201: IssuedApiKeySerializer})
    def post(self, request: Request) -> Response:
        """Create a personal API key, for `Authorization: Bearer cdk_…` wherever an access token
        is accepted (and the OpenAI-compatible API at `/v1/`). The key is in this answer only."""
        serializer = ApiKeyCreateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        issued = services.api_key_create(user=request.user, **serializer.validated_data)
        body = {**ApiKeySerializer(issued.api_key).data, "key": issued.key}
        return Response(body, status=status.HTTP_201_CREATED)


@extend_schema(tags=["auth"])
class ApiKeyApi(APIView):
    @extend_schema(parameters=[OpenApiParameter("key_id", int, OpenApiParameter.PATH)], responses={204: None})
    def delete(self, request: Request, key_id: str) -> Response:
        """Revoke an API key: it stops working at once, and websockets opened with it close."""
        api_key = None
        if untrusted.is_ascii_digits(key_id) and len(key_id) <= 18:  # fits a 64-bit id
            api_key = services.api_key_list(user=request.user).filter(pk=int(key_id)).first()
        if api_key is None:
            return error_response("No such API key.", "not_found", status.HTTP_404_NOT_FOUND)
        services.api_key_revoke(api_key=api_key)
        return Response(status=status.HTTP_204_NO_CONTENT)
