"""Turning bearer tokens into users, for DRF views and websockets alike."""

from __future__ import annotations

from django.contrib.auth import get_user_model
from rest_framework_simplejwt.authentication import JWTAuthentication
from rest_framework_simplejwt.exceptions import AuthenticationFailed, InvalidToken, TokenError

_jwt = JWTAuthentication()


def user_for_access_token(raw_token: str):
    """The active user a local access token belongs to and the token's expiry (UNIX time),
    or (None, None) if the token is invalid, expired, revoked or its user inactive."""
    try:
        validated = _jwt.get_validated_token(raw_token.encode())
        user = _jwt.get_user(validated)
    except (InvalidToken, TokenError, AuthenticationFailed, get_user_model().DoesNotExist):
        return None, None
    return user, int(validated["exp"])
