"""Browser login through the OpenID provider (mozilla-django-oidc), under /oidc/.

On only when `AUTH0__DOMAIN` (or `AUTH0__ISSUER`) and `OIDC_RP_CLIENT_ID` are set; otherwise the
/oidc/ URLs answer 404. The library's defaults are not safe as they are (see PITFALLS): the
backend below requires `email_verified`, matches users by the provider's `sub` before the
email, and creates email-only users the way our user model wants them.
"""

from __future__ import annotations

import logging
from typing import Any

from django.conf import settings
from django.http import Http404
from mozilla_django_oidc.auth import OIDCAuthenticationBackend
from mozilla_django_oidc.views import OIDCAuthenticationCallbackView, OIDCAuthenticationRequestView

from accounts.authentication import LOCAL_SUBJECT_PREFIX, PLACEHOLDER_EMAIL_DOMAIN
from accounts.models import User, normalize_email

logger = logging.getLogger(__name__)


def _subject(claims: dict[str, Any]) -> str | None:
    sub = claims.get("sub")
    if isinstance(sub, str) and sub and len(sub) <= 255 and not sub.startswith(LOCAL_SUBJECT_PREFIX):
        return sub
    return None


class ProviderBackend(OIDCAuthenticationBackend):
    def verify_token(self, token: str, **kwargs) -> dict[str, Any] | None:
        """The library checks the id token's signature and nonce only; check that it was issued
        by our provider, for us."""
        payload = super().verify_token(token, **kwargs)
        if not payload:
            return payload
        audience = payload.get("aud")
        audiences = audience if isinstance(audience, list) else [audience]
        if self.OIDC_RP_CLIENT_ID not in audiences or payload.get("iss") != settings.AUTH0_ISSUER:
            logger.warning("Browser login refused: the id token was not issued by the provider for this client")
            return None  # the callback view redirects to the failure URL
        return payload

    def verify_claims(self, claims: dict[str, Any]) -> bool:
        """A subject, and an email the provider has verified (an unverified email would let
        anyone who registers someone else's address at the provider take over that account)."""
        email = claims.get("email")
        return (
            _subject(claims) is not None
            and isinstance(email, str)
            and "@" in email
            and claims.get("email_verified") is True
        )

    def filter_users_by_claims(self, claims: dict[str, Any]) -> list[User]:
        """The user of this provider subject, else the user with this (verified) email."""
        by_subject = list(User.objects.filter(provider=User.Provider.OIDC, external_id=_subject(claims)))
        if by_subject:
            return by_subject
        return list(User.objects.filter(email=normalize_email(claims.get("email", ""))))

    def create_user(self, claims: dict[str, Any]) -> User:
        name = claims.get("name") if isinstance(claims.get("name"), str) else ""
        return User.objects.create_user(
            email=normalize_email(claims["email"]),
            password=None,  # signs in through the provider only
            name=name[:255],
            provider=User.Provider.OIDC,
            external_id=_subject(claims),
        )

    def update_user(self, user: User, claims: dict[str, Any]) -> User:
        """Link a provider user found by email to its subject, and replace a placeholder email
        (from an access token without one) by the verified one."""
        changed = []
        if user.provider == User.Provider.OIDC and not user.external_id:
            user.external_id = _subject(claims)
            changed.append("external_id")
        email = normalize_email(claims["email"])
        if (
            user.email.endswith(f"@{PLACEHOLDER_EMAIL_DOMAIN}")
            and user.email != email
            and not User.objects.filter(email=email).exists()
        ):
            user.email = email
            changed.append("email")
        if changed:
            user.save(update_fields=[*changed, "updated_at"])
        return user


class AuthenticationRequestView(OIDCAuthenticationRequestView):
    """`/oidc/authenticate/`: redirects to the provider (PKCE, nonce, state, `audience`)."""

    def get(self, request):
        if not settings.OIDC_ENABLED:
            raise Http404("Browser login through an OpenID provider is not configured.")
        return super().get(request)


class AuthenticationCallbackView(OIDCAuthenticationCallbackView):
    def get(self, request):
        if not settings.OIDC_ENABLED:
            raise Http404("Browser login through an OpenID provider is not configured.")
        return super().get(request)
