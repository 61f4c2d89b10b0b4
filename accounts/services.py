"""Accounts: creating users, signing them in and managing their refresh tokens."""

from __future__ import annotations

from typing import TypedDict

from django.contrib.auth import authenticate
from django.contrib.auth.models import update_last_login
from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.http import HttpRequest
from rest_framework_simplejwt.exceptions import TokenError
from rest_framework_simplejwt.settings import api_settings as jwt_settings
from rest_framework_simplejwt.token_blacklist.models import BlacklistedToken, OutstandingToken
from rest_framework_simplejwt.tokens import RefreshToken
from rest_framework_simplejwt.utils import datetime_from_epoch

from accounts.models import User, normalize_email

DUPLICATE_EMAIL_MESSAGE = "A user with this email already exists."


class TokenPair(TypedDict):
    access_token: str
    refresh_token: str
    token_type: str
    expires_in: int


def user_create(*, email: str, name: str, password: str | None, provider: str = User.Provider.PASS) -> User:
    email = normalize_email(email)
    user = User(email=email, name=name, provider=provider)
    if password is not None:
        try:
            validate_password(password, user=user)
        except ValidationError as exc:
            raise ValidationError({"password": exc.messages}) from exc
    if User.objects.filter(email=email).exists():
        raise ValidationError({"email": [DUPLICATE_EMAIL_MESSAGE]})
    user.set_password(password)
    try:
        with transaction.atomic():
            user.save()
    except IntegrityError as exc:  # lost a race with a concurrent registration
        raise ValidationError({"email": [DUPLICATE_EMAIL_MESSAGE]}) from exc
    return user


def user_authenticate(*, request: HttpRequest | None, email: str, password: str) -> User | None:
    """The active user with these credentials, or None. Takes as long for an unknown email as for a
    wrong password (the backend hashes either way), so answers don't reveal which emails exist."""
    user = authenticate(request, email=normalize_email(email), password=password)
    if user is not None:
        update_last_login(None, user)
    return user


def token_pair_issue(*, user: User) -> TokenPair:
    refresh = RefreshToken.for_user(user)  # also records it as outstanding, so it can be revoked
    return {
        "access_token": str(refresh.access_token),
        "refresh_token": str(refresh),
        "token_type": "bearer",
        "expires_in": int(jwt_settings.ACCESS_TOKEN_LIFETIME.total_seconds()),
    }


def _refresh_token_revoke(token: RefreshToken) -> None:
    """Blacklist a refresh token exactly once. The unique insert (not simplejwt's get_or_create)
    is what makes two concurrent uses of one token fail for all but one of them."""
    outstanding, _ = OutstandingToken.objects.get_or_create(
        jti=token[jwt_settings.JTI_CLAIM],
        defaults={"token": str(token), "expires_at": datetime_from_epoch(token["exp"])},
    )
    try:
        with transaction.atomic():
            BlacklistedToken.objects.create(token=outstanding)
    except IntegrityError as exc:
        raise TokenError("Token is blacklisted") from exc


@transaction.atomic
def token_pair_rotate(*, refresh_token: str) -> TokenPair:
    """Trade a refresh token for a new pair; the old one stops working."""
    token = RefreshToken(refresh_token)  # checks signature, expiry, type and the blacklist
    user = User.objects.filter(pk=token[jwt_settings.USER_ID_CLAIM], is_active=True).first()
    if user is None:
        raise TokenError("User not found or inactive")
    _refresh_token_revoke(token)
    return token_pair_issue(user=user)


@transaction.atomic
def token_revoke(*, refresh_token: str) -> None:
    """Log out: the refresh token stops working (access tokens expire on their own, shortly)."""
    _refresh_token_revoke(RefreshToken(refresh_token))
