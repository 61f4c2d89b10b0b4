"""Reads for the organization server: the user id Claire sees, the organization's bots, and
which sessions are whose."""

from __future__ import annotations

import hashlib
from typing import Any

from django.conf import settings
from django.core.cache import cache

from accounts.models import User
from orgproxy import claire_client
from orgproxy.models import ClientSession


def claire_user_id(*, user: User) -> str:
    """The stable, opaque user id sent to Claire (`organization_user_id`, `external_user_id`).

    The one place this rule lives:
    - users of the OpenID provider (provider OIDC, with a subject): the provider's `sub`, as
      the reference server sends (so sessions made through it stay theirs);
    - every other user: `conduit|<user pk>` (a provider `sub` may not start with `conduit|`,
      see accounts.authentication, so the two never collide).
    A user gets the same id however they authenticate (provider token, local JWT, browser)."""
    if user.provider == User.Provider.OIDC and user.external_id:
        return user.external_id
    return f"conduit|{user.pk}"


def _bots_cache_key() -> str:
    return "orgproxy:bots:" + hashlib.sha256(settings.CLAIRE_BASE_URL.encode()).hexdigest()[:16]


def bots_list() -> list[dict[str, Any]]:
    """The organization's bots, cached for CLAIRE_BOTS_CACHE_TTL seconds (0: not cached)."""
    ttl = settings.CLAIRE_BOTS_CACHE_TTL
    if ttl > 0:
        cached = cache.get(_bots_cache_key())
        if cached is not None:
            return cached
    bots = claire_client.bots_list()
    if ttl > 0:
        cache.set(_bots_cache_key(), bots, ttl)
    return bots


def bots_forget() -> None:
    cache.delete(_bots_cache_key())


def client_session_for_user(*, user: User, session_id: str) -> ClientSession | None:
    """The user's own session with this id, or None (unknown or someone else's)."""
    return ClientSession.objects.filter(session_id=session_id, user=user).first()


def session_owners(*, session_ids: list[str]) -> dict[str, int]:
    """session id → owner's user pk, for those of `session_ids` recorded here."""
    if not session_ids:
        return {}
    return dict(ClientSession.objects.filter(session_id__in=session_ids).values_list("session_id", "user_id"))
