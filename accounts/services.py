"""Accounts: creating users, signing them in, managing their refresh tokens and API keys, and ending
sessions."""

from __future__ import annotations

import hashlib
import hmac
import logging
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TypedDict

from django.conf import settings
from django.contrib.auth import authenticate
from django.contrib.auth.models import update_last_login
from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import ValidationError
from django.db import IntegrityError, models, transaction
from django.http import HttpRequest
from django.utils import timezone
from rest_framework_simplejwt.exceptions import TokenError
from rest_framework_simplejwt.settings import api_settings as jwt_settings
from rest_framework_simplejwt.tokens import RefreshToken
from rest_framework_simplejwt.utils import datetime_from_epoch

from accounts.compiled import CompiledLookup
from accounts.models import ApiKey, RefreshTokenRecord, User, normalize_email
from accounts.sockets import api_key_socket_group, browser_session_socket_group, sockets_close, user_socket_group

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


# --- personal API keys -------------------------------------------------------------------------
#
# A key is `cdk_` + 43 URL-safe characters from `secrets` (256 bits). Only HMAC-SHA256(key) under
# API_KEY_HASH_KEY is stored: a fast keyed hash, not a password hash, because the key is checked on
# every request and is random (nothing to guess, so no need to make guessing slow), while a database
# dump without the hash key gives nothing to test guesses against either.
# Keys survive a password change: they are separate credentials the user lists and revokes one by
# one (a password change must not silently break every tool). Deactivation revokes them all, and a
# key of an inactive user is refused anyway.

API_KEY_PREFIX = "cdk_"
API_KEY_SHOWN_CHARS = 12  # "cdk_" + 8 characters: the `prefix` shown in lists
REVOKED_ON_DEACTIVATION = "Account deactivated."


class ApiKeyInvalid(Exception):
    """A key that can't be used; the message says why (for the 401)."""


@dataclass(frozen=True)
class IssuedApiKey:
    api_key: ApiKey
    key: str  # the secret, shown to its owner once


def api_key_hash(raw_key: str) -> str:
    return hmac.new(settings.API_KEY_HASH_KEY.encode(), raw_key.encode(), hashlib.sha256).hexdigest()


def api_key_list(*, user: User):
    """The user's keys that are not revoked (expired ones included, so their owner sees them lapse)."""
    return ApiKey.objects.filter(user=user, revoked_at__isnull=True).order_by("-created_at", "-id")


def api_key_create(*, user: User, name: str, expires_at: datetime | None = None) -> IssuedApiKey:
    now = timezone.now()
    if expires_at is not None and expires_at <= now:
        raise ValidationError({"expires_at": ["The expiry must be in the future."]})
    limit = settings.API_KEYS_MAX_PER_USER
    with transaction.atomic():
        # The user's row lock makes concurrent creations take turns, so a burst can't pass the limit.
        User.objects.select_for_update().filter(pk=user.pk).first()
        usable = api_key_list(user=user).exclude(expires_at__lte=now).count()
        if usable >= limit:
            raise ValidationError(
                {"non_field_errors": [f"You have {usable} API keys (at most {limit}); revoke one first."]}
            )
        raw_key = API_KEY_PREFIX + secrets.token_urlsafe(32)
        api_key = ApiKey.objects.create(
            user=user, name=name, prefix=raw_key[:API_KEY_SHOWN_CHARS], key_hash=api_key_hash(raw_key), expires_at=expires_at
        )
    return IssuedApiKey(api_key=api_key, key=raw_key)


def api_key_revoke(*, api_key: ApiKey) -> None:
    """The key stops working at once (every request looks it up) and the websockets opened with it
    close, in every process."""
    if api_key.revoked_at is None:
        api_key.revoked_at = timezone.now()
        api_key.save(update_fields=["revoked_at"])  # a save, not update(): the audit log sees it
    transaction.on_commit(lambda: _sockets_close_quietly(api_key_socket_group(api_key.pk), "API key revoked."))


def api_keys_revoke_all(*, user_id: int) -> int:
    return ApiKey.objects.filter(user_id=user_id, revoked_at__isnull=True).update(revoked_at=timezone.now())


# Every request with an API key reads it (never cached: a revoked key stops working at once).
_api_key_by_hash = CompiledLookup(lambda digest: ApiKey.objects.select_related("user").filter(key_hash=digest)[:1])


def api_key_authenticate(*, raw_key: str) -> tuple[User, ApiKey]:
    """The active user of a usable key, and the key. One indexed query by the key's hash (its SQL
    compiled once: accounts.compiled); its `last_used_at` is written only when older than
    API_KEY_LAST_USED_INTERVAL.

    Raises ApiKeyInvalid for an unknown, revoked or expired key, or a key of an inactive user."""
    if not raw_key.startswith(API_KEY_PREFIX) or len(raw_key) > 200:
        raise ApiKeyInvalid("Invalid API key.")
    digest = api_key_hash(raw_key)
    api_key = _api_key_by_hash.first(digest)
    # The lookup is by the hash (an attacker learns nothing from how its comparison times); the
    # explicit comparison only guards against a database collation that compares loosely.
    if api_key is None or not hmac.compare_digest(api_key.key_hash, digest) or api_key.revoked_at is not None:
        raise ApiKeyInvalid("Invalid or revoked API key.")
    now = timezone.now()
    if api_key.expires_at is not None and api_key.expires_at <= now:
        raise ApiKeyInvalid("This API key has expired.")
    if not api_key.user.is_active:
        raise ApiKeyInvalid("User is inactive.")
    stale_before = now - timedelta(seconds=settings.API_KEY_LAST_USED_INTERVAL)
    if api_key.last_used_at is None or api_key.last_used_at < stale_before:
        # Conditional, so of concurrent requests at most one writes.
        ApiKey.objects.filter(pk=api_key.pk).filter(
            models.Q(last_used_at__isnull=True) | models.Q(last_used_at__lt=stale_before)
        ).update(last_used_at=now)
        api_key.last_used_at = now
    return api_key.user, api_key
