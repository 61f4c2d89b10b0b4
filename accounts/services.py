"""Accounts: creating users, signing them in, managing their refresh tokens, and ending sessions."""

from __future__ import annotations

import logging
from typing import TypedDict

from django.contrib.auth import authenticate
from django.contrib.auth.models import update_last_login
from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.http import HttpRequest
from django.utils import timezone
from rest_framework_simplejwt.exceptions import TokenError
from rest_framework_simplejwt.settings import api_settings as jwt_settings
from rest_framework_simplejwt.tokens import RefreshToken
from rest_framework_simplejwt.utils import datetime_from_epoch

from accounts.models import RefreshTokenRecord, User, normalize_email
from config.websocket_auth import browser_session_socket_group, sockets_close, user_socket_group

logger = logging.getLogger(__name__)

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
    refresh = RefreshToken.for_user(user)
    # Only what revocation needs is kept: a database dump must not hand out working tokens.
    RefreshTokenRecord.objects.create(
        jti=refresh[jwt_settings.JTI_CLAIM], user=user, expires_at=datetime_from_epoch(refresh["exp"])
    )
    return {
        "access_token": str(refresh.access_token),
        "refresh_token": str(refresh),
        "token_type": "bearer",
        "expires_in": int(jwt_settings.ACCESS_TOKEN_LIFETIME.total_seconds()),
    }


def _refresh_token_use(token: RefreshToken) -> None:
    """Mark a refresh token used, exactly once. One conditional UPDATE: of several concurrent uses
    of one token the database lets exactly one change the row (the others find it revoked, or
    wait for the row lock and then find it revoked). A token without a live record (never
    recorded, revoked, used, or its user's sessions ended) is refused."""
    used = RefreshTokenRecord.objects.filter(
        jti=token[jwt_settings.JTI_CLAIM],
        user_id=token[jwt_settings.USER_ID_CLAIM],
        revoked_at__isnull=True,
        expires_at__gt=timezone.now(),
    ).update(revoked_at=timezone.now())
    if used != 1:
        raise TokenError("Token is revoked or already used")


@transaction.atomic
def token_pair_rotate(*, refresh_token: str) -> TokenPair:
    """Trade a refresh token for a new pair; the old one stops working."""
    token = RefreshToken(refresh_token)  # checks signature, expiry and type
    _refresh_token_use(token)
    user = User.objects.filter(pk=token[jwt_settings.USER_ID_CLAIM], is_active=True).first()
    if user is None:
        raise TokenError("User not found or inactive")
    return token_pair_issue(user=user)


@transaction.atomic
def token_revoke(*, refresh_token: str) -> None:
    """Log out: the refresh token stops working (access tokens expire on their own, shortly)."""
    _refresh_token_use(RefreshToken(refresh_token))


def refresh_tokens_flush_expired() -> int:
    """Delete the records of expired refresh tokens (they are refused by their `exp` anyway)."""
    deleted, _ = RefreshTokenRecord.objects.filter(expires_at__lte=timezone.now()).delete()
    return deleted


# --- ending sessions ---------------------------------------------------------------------------

INVALID_CURRENT_PASSWORD = "The current password is not correct."


def user_sessions_end(*, user_id: int, reason: str) -> int:
    """The one rule for a password change, a deactivation or a deletion: every refresh token of the
    user stops working, and every websocket they have open, in any process, is closed (after the
    transaction commits, so a socket never closes for a change that was rolled back).

    Access tokens can't be revoked: the password-hash claim (simplejwt CHECK_REVOKE_TOKEN) refuses
    those issued before a password change, and the user lookup those of an inactive or deleted user.
    Called from User.save() and the user's post_delete (accounts.signals). Returns the number of
    refresh tokens revoked."""
    revoked = RefreshTokenRecord.objects.filter(user_id=user_id, revoked_at__isnull=True).update(
        revoked_at=timezone.now()
    )
    transaction.on_commit(lambda: _sockets_close_quietly(user_socket_group(user_id), reason))
    return revoked


def browser_session_sockets_close(*, session_key: str | None, reason: str) -> None:
    """Close the websockets opened with this Django session's cookie (a cookie logout)."""
    if session_key:
        transaction.on_commit(lambda: _sockets_close_quietly(browser_session_socket_group(session_key), reason))


def _sockets_close_quietly(group: str, reason: str) -> None:
    # The change itself is committed; a channel layer that can't be reached (Redis down) must not
    # turn it into a 500. The sockets then last until their token expires or they reconnect.
    try:
        sockets_close(group=group, reason=reason)
    except Exception:  # noqa: BLE001 - logged; the revocation in the database stands
        logger.exception("Could not tell open websockets to close (%s)", reason)


def user_password_change(*, user: User, current_password: str, new_password: str) -> TokenPair:
    """Change a user's password, knowing the current one. Ends every other session of the user
    (User.save() does that for every way a password changes) and answers a fresh pair."""
    if not user.check_password(current_password):
        raise ValidationError({"current_password": [INVALID_CURRENT_PASSWORD]})
    try:
        validate_password(new_password, user=user)
    except ValidationError as exc:
        raise ValidationError({"new_password": exc.messages}) from exc
    with transaction.atomic():
        user.set_password(new_password)
        user.save()
        return token_pair_issue(user=user)
