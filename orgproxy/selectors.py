"""Reads for the organization server: the user id Claire sees, the organization's bots, and
which sessions are whose."""

from __future__ import annotations

import hashlib
import time
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


# In front of the shared cache, each process keeps the list it last read for up to a second: with the
# cache in Redis, that read is a round trip on every `GET /bots` and `POST /session` otherwise
# (bench/RESULTS.md, issue 18). A bot removed upstream may be offered up to that much longer here
# than by the shared cache; Claire's 404 on a session for it still forgets it at once (services).
RECENT_SECONDS = 1.0
_recent: tuple[str, float, tuple[dict[str, Any], ...]] | None = None  # (cache key, read at, bots)


def bots_list() -> list[dict[str, Any]]:
    """The organization's bots, cached for CLAIRE_BOTS_CACHE_TTL seconds (0: not cached). A new list
    for each caller (the bots themselves are shared: read them, don't change them)."""
    global _recent
    ttl = settings.CLAIRE_BOTS_CACHE_TTL
    if ttl <= 0:
        return claire_client.bots_list()
    key = _bots_cache_key()
    now = time.monotonic()
    recent = _recent
    if recent is not None and recent[0] == key and now - recent[1] < min(RECENT_SECONDS, ttl):
        return list(recent[2])
    bots = cache.get(key)
    if bots is None:
        bots = claire_client.bots_list()
        cache.set(key, bots, ttl)
    _recent = (key, now, tuple(bots))
    return list(bots)


def bots_forget() -> None:
    """Forget the cached list, in the shared cache and in this process."""
    global _recent
    _recent = None
    cache.delete(_bots_cache_key())


def client_session_for_user(*, user: User, session_id: str) -> ClientSession | None:
    """The user's own session with this id, or None (unknown or someone else's)."""
    return ClientSession.objects.filter(session_id=session_id, user=user).first()


def session_owners(*, session_ids: list[str]) -> dict[str, int]:
    """session id → owner's user pk, for those of `session_ids` recorded here."""
    if not session_ids:
        return {}
    return dict(ClientSession.objects.filter(session_id__in=session_ids).values_list("session_id", "user_id"))
