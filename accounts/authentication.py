"""Turning bearer tokens into users, for DRF views and websockets alike.

Two kinds of bearer token are accepted, told apart by the JWT header's `alg` before anything
else is looked at:
- local access tokens from `POST /api/v1/auth/login`: HS256, verified by simplejwt;
- access tokens from the OpenID provider (`AUTH0__DOMAIN`): RS256, verified here against the
  provider's JWKS (issuer, audience, expiry, signature).
Each kind is verified only with its own algorithm list, so `alg=none` or an HS256 token signed
with the provider's public key can never pass as either.

Provider users are created on first sight (provider OIDC, external_id = the token's `sub`).
"""

from __future__ import annotations

import collections
import hashlib
import logging
import threading
import time
from typing import Any

import jwt
from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import IntegrityError, transaction
from rest_framework import exceptions, status
from rest_framework.authentication import BaseAuthentication, get_authorization_header
from rest_framework_simplejwt.authentication import JWTAuthentication
from rest_framework_simplejwt.exceptions import AuthenticationFailed, ExpiredTokenError, InvalidToken, TokenError
from rest_framework_simplejwt.tokens import AccessToken

from accounts import services
from accounts.compiled import CompiledLookup
from accounts.models import User, normalize_email

logger = logging.getLogger(__name__)

_jwt = JWTAuthentication()

PROVIDER_ALGORITHM = "RS256"
# Namespace of the upstream ids given to local users (orgproxy.selectors.claire_user_id): a
# provider `sub` may not pose as one.
LOCAL_SUBJECT_PREFIX = "conduit|"
PLACEHOLDER_EMAIL_DOMAIN = "users.invalid"
CLOCK_SKEW_SECONDS = 30


class ProviderUnavailable(exceptions.APIException):
    status_code = status.HTTP_503_SERVICE_UNAVAILABLE
    default_detail = "The sign-in provider's keys could not be fetched; try again shortly."
    default_code = "auth_provider_unavailable"


class ProviderTokenInvalid(Exception):
    """A provider token that must not be accepted; the message says why (for the 401)."""

    code = "token_not_valid"


class ProviderTokenExpired(ProviderTokenInvalid):
    code = "token_expired"


TOKEN_EXPIRED_MESSAGE = (
    "The access token has expired; get a new one (POST /api/v1/auth/refresh, or sign in again)."
)


# --- provider keys -----------------------------------------------------------------------------

class _JWKClient(jwt.PyJWKClient):
    """PyJWKClient that keeps using the last key set it fetched when the provider can't be
    reached (a provider outage shouldn't sign everyone out once the cache expires). Keys the
    provider removed stop working at the next successful fetch."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._last_good: jwt.PyJWKSet | None = None

    def get_jwk_set(self, refresh: bool = False) -> jwt.PyJWKSet:
        try:
            jwk_set = super().get_jwk_set(refresh)
        except jwt.PyJWKClientConnectionError:
            if self._last_good is None:
                raise
            logger.warning("The provider's JWKS could not be fetched; using the last key set fetched")
            return self._last_good
        self._last_good = jwk_set
        return jwk_set


_jwks_clients: dict[tuple, _JWKClient] = {}
_jwks_lock = threading.Lock()


def _jwks_client() -> _JWKClient:
    """One client per JWKS URL (and cache settings) per process: the key set is fetched lazily,
    cached, and refetched when a token names an unknown `kid` (at most once per cooldown)."""
    key = (
        settings.AUTH0_JWKS_URL,
        settings.AUTH0_JWKS_CACHE_SECONDS,
        settings.AUTH0_JWKS_REFRESH_COOLDOWN,
        settings.AUTH0_TIMEOUT,
    )
    client = _jwks_clients.get(key)
    if client is None:
        with _jwks_lock:
            client = _jwks_clients.get(key)
            if client is None:
                client = _JWKClient(
                    settings.AUTH0_JWKS_URL,
                    cache_jwk_set=True,
                    lifespan=max(settings.AUTH0_JWKS_CACHE_SECONDS, 0.01),
                    cooldown_duration=settings.AUTH0_JWKS_REFRESH_COOLDOWN,
                    timeout=settings.AUTH0_TIMEOUT,
                )
                _jwks_clients[key] = client
    return client


def reset_provider_keys() -> None:
    """Forget every cached key set and verified token (tests; a process picks up a new provider
    on restart anyway)."""
    with _jwks_lock:
        _jwks_clients.clear()
    verified_tokens.clear()


class VerifiedTokenCache:
    """Claims of provider tokens this process verified recently, so that a client sending the
    same token on every request (what Claire clients do) costs one RS256 verification per token,
    not one per request (bench/RESULTS.md, issue 18).

    Safe because:
    - the key is the whole token string, compared in full: a token differing in any byte (a
      tampered payload or signature) is another key and goes through the full check;
    - an entry is served only before the token's `exp` (no clock-skew leeway: past `exp` the token
      is verified again, with the same leeway as always) and before the provider's verification
      settings (issuer, audience, JWKS URL) change;
    - an entry lives at most AUTH0_JWKS_CACHE_SECONDS: a key the provider withdraws stops
      working here about as soon as it did without this cache (at the next JWKS fetch);
    - only tokens that passed every check are stored; at most `max_entries`, oldest out first.
    Revocation: provider access tokens are self-contained and were never checked with the
    provider per request, so nothing is lost there. What the server decides per request (the
    user's row: deactivated or deleted users) is still read on every request, never cached."""

    def __init__(self) -> None:
        self._entries: collections.OrderedDict[str, tuple[tuple, float, dict[str, Any]]] = collections.OrderedDict()
        self._lock = threading.Lock()

    def get(self, token: str, config: tuple) -> dict[str, Any] | None:
        entry = self._entries.get(token)
        if entry is None:
            return None
        entry_config, valid_until, claims = entry
        if entry_config != config or time.time() >= valid_until:
            with self._lock:
                self._entries.pop(token, None)
            return None
        return dict(claims)  # a copy: a caller changing its claims can't change the cached ones

    def put(self, token: str, config: tuple, claims: dict[str, Any], *, max_entries: int, lifetime: float) -> None:
        valid_until = min(float(claims["exp"]), time.time() + lifetime)
        if max_entries <= 0 or valid_until <= time.time():
            return
        with self._lock:
            self._entries[token] = (config, valid_until, dict(claims))
            self._entries.move_to_end(token)
            while len(self._entries) > max_entries:
                self._entries.popitem(last=False)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, token: str) -> bool:
        return token in self._entries


verified_tokens = VerifiedTokenCache()


def _verification_config() -> tuple:
    return (settings.AUTH0_ISSUER, settings.AUTH0_AUDIENCE, settings.AUTH0_JWKS_URL)


def provider_configured() -> bool:
    return bool(settings.AUTH0_ISSUER and settings.AUTH0_AUDIENCE and settings.AUTH0_JWKS_URL)


def is_provider_token(raw_token: str) -> bool:
    """True for an RS256 JWT (a provider token) when a provider is configured."""
    if not provider_configured():
        return False
    if raw_token in verified_tokens:  # verified as one before (and only RS256 tokens are)
        return True
    try:
        header = jwt.get_unverified_header(raw_token)
    except jwt.InvalidTokenError:
        return False
    return header.get("alg") == PROVIDER_ALGORITHM


def provider_claims(raw_token: str) -> dict[str, Any]:
    """The verified claims of a provider access token.

    Raises ProviderTokenInvalid (→ 401) or ProviderUnavailable (→ 503, JWKS unreachable).
    A token verified before is answered from `verified_tokens` until its `exp` (see there)."""
    config = _verification_config()
    cached = verified_tokens.get(raw_token, config)
    if cached is not None:
        return cached
    claims = _verify_provider_token(raw_token)
    verified_tokens.put(
        raw_token,
        config,
        claims,
        max_entries=settings.AUTH0_VERIFIED_TOKEN_CACHE_SIZE,
        lifetime=settings.AUTH0_JWKS_CACHE_SECONDS,
    )
    return claims


def _verify_provider_token(raw_token: str) -> dict[str, Any]:
    try:
        signing_key = _jwks_client().get_signing_key_from_jwt(raw_token)
    except jwt.PyJWKClientConnectionError as exc:
        logger.warning("Could not fetch the provider's JWKS: %s", exc)
        raise ProviderUnavailable() from None
    except (jwt.PyJWKClientError, jwt.InvalidTokenError):
        raise ProviderTokenInvalid("Token signed with an unknown key.") from None
    try:
        claims = jwt.decode(
            raw_token,
            signing_key.key,
            algorithms=[PROVIDER_ALGORITHM],
            audience=settings.AUTH0_AUDIENCE,
            issuer=settings.AUTH0_ISSUER,
            leeway=CLOCK_SKEW_SECONDS,
            options={"require": ["exp", "iat", "iss", "aud", "sub"]},
        )
    except jwt.ExpiredSignatureError:
        raise ProviderTokenExpired(TOKEN_EXPIRED_MESSAGE) from None
    except jwt.InvalidAudienceError:
        raise ProviderTokenInvalid("Token is not meant for this API (audience).") from None
    except jwt.InvalidIssuerError:
        raise ProviderTokenInvalid("Token is from another issuer.") from None
    except jwt.InvalidTokenError:
        raise ProviderTokenInvalid("Token is invalid.") from None
    sub = claims.get("sub")
    if not isinstance(sub, str) or not sub or len(sub) > 255 or sub.startswith(LOCAL_SUBJECT_PREFIX):
        raise ProviderTokenInvalid("Token has no usable subject.")
    return claims


def placeholder_email(sub: str) -> str:
    """The email of a provider user whose token carries no verified email: unique per `sub`,
    in the reserved `.invalid` domain, so it can never receive mail or collide with a real one."""
    return f"{hashlib.sha256(sub.encode()).hexdigest()[:16]}@{PLACEHOLDER_EMAIL_DOMAIN}"


def _by_subject(users):
    """`users` narrowed to one provider subject (unique by the provider/external_id constraint)."""
    return lambda sub: users.filter(provider=User.Provider.OIDC, external_id=sub).order_by("pk")[:1]


_provider_user = CompiledLookup(_by_subject(User.objects.all()))


def provider_user(sub: str) -> User | None:
    """The user of a provider subject, or None. Read on every request with a provider token (the row
    is never cached: deactivation takes effect at once), its SQL compiled once (accounts.compiled)."""
    return _provider_user.first(sub)


def provider_user_for_claims(claims: dict[str, Any]) -> User:
    """The local user of a provider subject, created on first sight (just in time).

    Matched by (provider OIDC, external_id = sub) only. A verified `email` claim becomes the new
    user's email when no one has it yet; an access token never links to an existing account by
    email (browser login does that, see accounts.oidc)."""
    sub = claims["sub"]
    user = provider_user(sub)
    if user is not None:
        return user
    email = placeholder_email(sub)
    claimed = claims.get("email")
    if isinstance(claimed, str) and claimed and claims.get("email_verified") is True:
        if not User.objects.filter(email=normalize_email(claimed)).exists():
            email = normalize_email(claimed)
    name = claims.get("name") if isinstance(claims.get("name"), str) else ""
    try:
        with transaction.atomic():
            return User.objects.create_user(
                email=email, password=None, name=name[:255], provider=User.Provider.OIDC, external_id=sub
            )
    except IntegrityError:
        # A concurrent request created this subject's user, or took the email meanwhile.
        user = User.objects.filter(provider=User.Provider.OIDC, external_id=sub).first()
        if user is not None:
            return user
        with transaction.atomic():
            return User.objects.create_user(
                email=placeholder_email(sub),
                password=None,
                name=name[:255],
                provider=User.Provider.OIDC,
                external_id=sub,
            )


# The fields a provider user's requests on the organization server's fast path read.
_IDENTITY_FIELDS = ("id", "is_active", "provider", "external_id")
_provider_user_identity_lookup = CompiledLookup(_by_subject(User.objects.only(*_IDENTITY_FIELDS)))


def _provider_user_identity(sub: str) -> User | None:
    """`provider_user(sub)` with only _IDENTITY_FIELDS loaded (the others load when read, as
    deferred fields do): half its CPU (no date parsing, a smaller model instance)."""
    return _provider_user_identity_lookup.first(sub)


def known_provider_user(authorization: str) -> User | None:
    """The user of an `Authorization` header value carrying a valid provider token, when that user
    exists and is active; None in every other case (no bearer token, another kind of token, an
    invalid or expired one, the JWKS unreachable, a subject seen for the first time, an inactive
    user), which the full authentication then answers. For a request path that skips DRF in the
    plain case (orgproxy.fastpath); the same checks as ProviderTokenAuthentication. The user comes
    with only its identity loaded (see _provider_user_identity)."""
    if not authorization.isascii():
        return None
    parts = authorization.encode("ascii").split()  # as DRF splits the header (bytes: ASCII whitespace only)
    if len(parts) != 2 or parts[0].lower() != b"bearer":
        return None
    raw_token = parts[1].decode("ascii")
    if not is_provider_token(raw_token):
        return None
    try:
        claims = provider_claims(raw_token)
    except (ProviderTokenInvalid, ProviderUnavailable):
        return None
    user = _provider_user_identity(claims["sub"])
    return user if user is not None and user.is_active else None


class ProviderTokenAuthentication(BaseAuthentication):
    """DRF authentication for the provider's RS256 access tokens. Passes (returns None) on
    anything else, so the local-token class after it gets its turn."""

    keyword = b"bearer"
    # Besides 401: documented on every operation this class guards (config/openapi.py).
    openapi_error_statuses = {"503": ProviderUnavailable.default_detail}

    def authenticate(self, request):
        parts = get_authorization_header(request).split()
        if len(parts) != 2 or parts[0].lower() != self.keyword:
            return None
        try:
            raw_token = parts[1].decode("ascii")
        except UnicodeDecodeError:
            return None
        if not is_provider_token(raw_token):
            return None
        try:
            claims = provider_claims(raw_token)
        except ProviderTokenInvalid as exc:
            raise exceptions.AuthenticationFailed(str(exc), code=exc.code) from None
        user = provider_user_for_claims(claims)
        if not user.is_active:
            raise exceptions.AuthenticationFailed("User is inactive.", code="user_inactive")
        return user, claims

    def authenticate_header(self, request) -> str:
        return 'Bearer realm="api"'


class LocalTokenAuthentication(JWTAuthentication):
    """simplejwt's authentication of local access tokens, saying plainly when one has expired (simplejwt
    says "Given token not valid for any token type")."""

    def get_validated_token(self, raw_token: bytes):
        try:
            return super().get_validated_token(raw_token)
        except InvalidToken:
            try:
                AccessToken(raw_token)
            except ExpiredTokenError:  # raised only once the signature has been verified
                raise exceptions.AuthenticationFailed(TOKEN_EXPIRED_MESSAGE, code="token_expired") from None
            except TokenError:
                pass
            raise


def user_for_access_token(raw_token: str):
    """The active user an access token (local or provider) belongs to and the token's expiry
    (UNIX time), or (None, None) if the token is invalid, expired, revoked or its user inactive.
    Used by the websocket authentication."""
    if is_provider_token(raw_token):
        try:
            claims = provider_claims(raw_token)
        except (ProviderTokenInvalid, ProviderUnavailable):
            return None, None
        user = provider_user_for_claims(claims)
        if not user.is_active:
            return None, None
        return user, int(claims["exp"])
    try:
        validated = _jwt.get_validated_token(raw_token.encode())
        user = _jwt.get_user(validated)
    except (InvalidToken, TokenError, AuthenticationFailed, get_user_model().DoesNotExist):
        return None, None
    return user, int(validated["exp"])


# --- personal API keys ---------------------------------------------------------------------------


class ApiKeyAuthentication(BaseAuthentication):
    """DRF authentication for personal API keys (`Authorization: Bearer cdk_…`). Passes (returns
    None) on any other bearer token, so the JWT classes get their turn."""

    keyword = b"bearer"

    def authenticate(self, request):
        parts = get_authorization_header(request).split()
        if len(parts) != 2 or parts[0].lower() != self.keyword:
            return None
        try:
            raw_key = parts[1].decode("ascii")
        except UnicodeDecodeError:
            return None
        if not raw_key.startswith(services.API_KEY_PREFIX):
            return None
        try:
            return services.api_key_authenticate(raw_key=raw_key)
        except services.ApiKeyInvalid as exc:
            raise exceptions.AuthenticationFailed(str(exc), code="invalid_api_key") from None

    def authenticate_header(self, request) -> str:
        return 'Bearer realm="api"'


def api_key_for_socket(raw_key: str) -> tuple[User | None, int | None, int | None]:
    """(user, expiry as UNIX time or None, key id) of a usable API key, else (None, None, None).
    Used by the websocket authentication."""
    try:
        user, api_key = services.api_key_authenticate(raw_key=raw_key)
    except services.ApiKeyInvalid:
        return None, None, None
    expires_at = int(api_key.expires_at.timestamp()) if api_key.expires_at else None
    return user, expires_at, api_key.pk
