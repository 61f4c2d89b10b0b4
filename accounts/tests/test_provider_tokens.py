"""Access tokens from the OpenID provider (a real fake provider on 127.0.0.1), on the platform
API (`/api/v1/auth/me`) and on the organization server, and for websockets."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import socket
import time

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from rest_framework.test import APIClient

from accounts.authentication import known_provider_user, placeholder_email, user_for_access_token
from accounts.models import User
from accounts.services import token_pair_issue

pytestmark = pytest.mark.django_db


def client_with(token: str) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
    return client


def assert_unauthorized(response, message: str | None = None) -> None:
    assert response.status_code == 401, response.content
    assert response["WWW-Authenticate"].startswith("Bearer")
    detail = response.json()["detail"]
    assert set(detail) == {"message", "code", "request_id"}
    if message is not None:
        assert detail["message"] == message


def test_a_provider_token_signs_the_user_in(oidc_provider):
    response = client_with(oidc_provider.mint(sub="auth0|alice")).get("/api/v1/auth/me")

    assert response.status_code == 200
    user = User.objects.get(provider=User.Provider.OIDC, external_id="auth0|alice")
    assert response.json()["id"] == user.pk
    assert user.email == placeholder_email("auth0|alice")
    assert user.email.endswith("@users.invalid") and not user.has_usable_password()


def test_the_same_subject_is_the_same_user_every_time(oidc_provider):
    first = client_with(oidc_provider.mint(sub="auth0|alice")).get("/api/v1/auth/me").json()["id"]
    second = client_with(oidc_provider.mint(sub="auth0|alice")).get("/api/v1/auth/me").json()["id"]

    assert first == second
    assert User.objects.filter(external_id="auth0|alice").count() == 1


def test_a_verified_email_claim_becomes_the_new_users_email(oidc_provider):
    token = oidc_provider.mint(sub="auth0|carol", email="Carol@Example.com", email_verified=True)

    client_with(token).get("/api/v1/auth/me")

    assert User.objects.get(external_id="auth0|carol").email == "carol@example.com"


def test_an_unverified_or_taken_email_is_not_used(oidc_provider, user):
    client_with(oidc_provider.mint(sub="auth0|x", email="x@example.com", email_verified=False)).get("/api/v1/auth/me")
    client_with(oidc_provider.mint(sub="auth0|y", email=user.email, email_verified=True)).get("/api/v1/auth/me")

    assert User.objects.get(external_id="auth0|x").email == placeholder_email("auth0|x")
    assert User.objects.get(external_id="auth0|y").email == placeholder_email("auth0|y")
    assert User.objects.get(pk=user.pk).provider == User.Provider.PASS  # never linked by email


def test_the_keys_are_fetched_once_and_cached(oidc_provider):
    for _ in range(3):
        assert client_with(oidc_provider.mint()).get("/api/v1/auth/me").status_code == 200

    assert oidc_provider.jwks_fetches == 1


def test_a_missing_token_answers_401_with_a_bearer_challenge(oidc_provider):
    assert_unauthorized(APIClient().get("/api/v1/auth/me"))


@pytest.mark.parametrize(
    ("breakage", "message"),
    [
        ({"exp": int(time.time()) - 3600}, "The access token has expired; get a new one (POST /api/v1/auth/refresh, or sign in again)."),
        ({"aud": "https://someone-else.test/api"}, "Token is not meant for this API (audience)."),
        ({"iss": "https://evil.example.com/"}, "Token is from another issuer."),
        ({"exp": ...}, "Token is invalid."),
        ({"sub": ...}, "Token is invalid."),
        ({"sub": "conduit|1"}, "Token has no usable subject."),
        ({"iat": int(time.time()) + 3600}, "Token is invalid."),
    ],
    ids=["expired", "wrong-audience", "wrong-issuer", "no-exp", "no-sub", "local-namespace-sub", "issued-in-future"],
)
def test_a_bad_provider_token_answers_401(oidc_provider, breakage, message):
    assert_unauthorized(client_with(oidc_provider.mint(**breakage)).get("/api/v1/auth/me"), message)
    assert not User.objects.filter(provider=User.Provider.OIDC).exists()


def test_a_token_signed_with_a_key_not_in_the_jwks_answers_401(oidc_provider):
    token = oidc_provider.mint(key=oidc_provider.stray_key)

    assert_unauthorized(client_with(token).get("/api/v1/auth/me"), "Token signed with an unknown key.")


def test_a_token_with_a_known_kid_but_another_keys_signature_answers_401(oidc_provider):
    token = oidc_provider.mint(key=oidc_provider.stray_key, kid=oidc_provider.key.kid)

    assert_unauthorized(client_with(token).get("/api/v1/auth/me"), "Token is invalid.")


def test_a_tampered_token_answers_401(oidc_provider):
    header, payload, signature = oidc_provider.mint(sub="auth0|alice").split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=="))
    forged = base64.urlsafe_b64encode(json.dumps({**claims, "sub": "auth0|admin"}).encode()).rstrip(b"=").decode()

    assert_unauthorized(client_with(f"{header}.{forged}.{signature}").get("/api/v1/auth/me"))


def test_an_unsigned_token_is_refused(oidc_provider):
    token = jwt.encode(
        {"iss": oidc_provider.issuer, "aud": oidc_provider.audience, "sub": "auth0|alice",
         "iat": int(time.time()), "exp": int(time.time()) + 600},
        key=None,
        algorithm="none",
    )

    assert_unauthorized(client_with(token).get("/api/v1/auth/me"))


def test_an_hs256_token_signed_with_the_providers_public_key_is_refused(oidc_provider):
    public_pem = oidc_provider.key.private_key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    claims = {"iss": oidc_provider.issuer, "aud": oidc_provider.audience, "sub": "auth0|alice",
              "iat": int(time.time()), "exp": int(time.time()) + 600}
    # PyJWT refuses to HMAC-sign with a PEM key, which is the point; forge the token by hand.
    def b64(data: bytes) -> str:
        return base64.urlsafe_b64encode(data).rstrip(b"=").decode()

    header = {"alg": "HS256", "typ": "JWT", "kid": oidc_provider.key.kid}
    signing_input = f"{b64(json.dumps(header).encode())}.{b64(json.dumps(claims).encode())}"
    signature = b64(hmac.new(public_pem, signing_input.encode(), hashlib.sha256).digest())

    assert_unauthorized(client_with(f"{signing_input}.{signature}").get("/api/v1/auth/me"))


def test_a_rotated_key_is_accepted_after_the_jwks_is_refetched(oidc_provider):
    assert client_with(oidc_provider.mint()).get("/api/v1/auth/me").status_code == 200
    oidc_provider.rotate()

    response = client_with(oidc_provider.mint()).get("/api/v1/auth/me")

    assert response.status_code == 200
    assert oidc_provider.jwks_fetches == 2


def test_unknown_kids_refetch_the_jwks_at_most_once_per_cooldown(oidc_provider, settings):
    settings.AUTH0_JWKS_REFRESH_COOLDOWN = 300
    assert client_with(oidc_provider.mint()).get("/api/v1/auth/me").status_code == 200

    for _ in range(5):
        assert_unauthorized(client_with(oidc_provider.mint(key=oidc_provider.stray_key)).get("/api/v1/auth/me"))

    assert oidc_provider.jwks_fetches == 1


def test_an_unreachable_provider_answers_503(oidc_provider, settings):
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    settings.AUTH0_JWKS_URL = f"http://127.0.0.1:{port}/.well-known/jwks.json"

    response = client_with(oidc_provider.mint()).get("/api/v1/auth/me")

    assert response.status_code == 503
    assert response.json()["detail"]["code"] == "auth_provider_unavailable"


def test_the_last_key_set_is_used_while_the_provider_is_down(oidc_provider, settings):
    settings.AUTH0_JWKS_CACHE_SECONDS = 0.05
    assert client_with(oidc_provider.mint()).get("/api/v1/auth/me").status_code == 200
    oidc_provider.jwks_down = True
    time.sleep(0.1)  # let the cached key set expire

    assert client_with(oidc_provider.mint()).get("/api/v1/auth/me").status_code == 200
    assert_unauthorized(client_with(oidc_provider.mint(key=oidc_provider.stray_key)).get("/api/v1/auth/me"))
    assert oidc_provider.jwks_fetches == 1
    assert oidc_provider.requests.count(("GET", "/.well-known/jwks.json")) >= 2  # it did try again


def test_local_tokens_still_work_beside_the_provider(oidc_provider, user):
    token = token_pair_issue(user=user)["access_token"]

    assert client_with(token).get("/api/v1/auth/me").json()["id"] == user.pk
    assert oidc_provider.jwks_fetches == 0  # told apart by the header, not by trying the provider


def test_a_provider_token_is_refused_when_no_provider_is_configured(oidc_provider, settings):
    token = oidc_provider.mint()
    settings.AUTH0_ISSUER = ""

    assert_unauthorized(client_with(token).get("/api/v1/auth/me"))


def test_an_inactive_provider_user_is_refused(oidc_provider):
    client_with(oidc_provider.mint(sub="auth0|gone")).get("/api/v1/auth/me")
    User.objects.filter(external_id="auth0|gone").update(is_active=False)

    assert_unauthorized(client_with(oidc_provider.mint(sub="auth0|gone")).get("/api/v1/auth/me"))


def test_known_provider_user_is_the_active_user_the_drf_class_would_take(oidc_provider, django_assert_num_queries):
    token = oidc_provider.mint(sub="auth0|known")
    client_with(token).get("/api/v1/auth/me")  # made on first sight
    full = User.objects.get(external_id="auth0|known")

    with django_assert_num_queries(1):
        user = known_provider_user(f"Bearer {token}")
        assert (user.pk, user.is_active, user.provider, user.external_id) == (full.pk, True, "OIDC", "auth0|known")
    assert user.is_active is True  # converted as the ORM converts it (SQLite stores 1)
    assert user.email == full.email  # the other fields load when read

    assert known_provider_user(f"bearer  {token}") is not None  # as DRF splits the header
    for other in (f"Token {token}", f"Bearer {token} extra", f"Bearer\x85{token}", "Bearer not-a-jwt",
                  f"Bearer {oidc_provider.mint(sub='auth0|never-seen')}", ""):  # fmt: skip
        assert known_provider_user(other) is None, other
    User.objects.filter(pk=full.pk).update(is_active=False)
    assert known_provider_user(f"Bearer {token}") is None


# --- websockets: user_for_access_token -------------------------------------------------------


def test_user_for_access_token_takes_provider_tokens(oidc_provider):
    exp = int(time.time()) + 120

    user, expires_at = user_for_access_token(oidc_provider.mint(sub="auth0|ws", exp=exp))

    assert (user.external_id, expires_at) == ("auth0|ws", exp)


def test_user_for_access_token_refuses_bad_provider_tokens(oidc_provider):
    assert user_for_access_token(oidc_provider.mint(aud="other")) == (None, None)
    assert user_for_access_token(oidc_provider.mint(key=oidc_provider.stray_key)) == (None, None)


def test_user_for_access_token_still_takes_local_tokens(oidc_provider, user):
    found, expires_at = user_for_access_token(token_pair_issue(user=user)["access_token"])

    assert found == user and expires_at > time.time()
