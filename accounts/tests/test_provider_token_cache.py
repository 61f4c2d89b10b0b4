"""The verified-claims cache of provider tokens (accounts.authentication.VerifiedTokenCache):
a token is RS256-verified once and then answered from memory, but never past its `exp`, never
for a token differing in any byte, never beyond the size bound, and never instead of the user's
row (deactivation still takes effect at once). Real fake provider, real requests."""

from __future__ import annotations

import base64
import json
import time

import pytest
from rest_framework.test import APIClient

from accounts import authentication
from accounts.authentication import TOKEN_EXPIRED_MESSAGE, verified_tokens
from accounts.models import User

pytestmark = pytest.mark.django_db


def me(token: str):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
    return client.get("/api/v1/auth/me")


def assert_refused(response, message: str) -> None:
    assert response.status_code == 401, response.content
    assert response.json()["detail"]["message"] == message


def test_a_verified_token_is_kept_and_served_again(oidc_provider, monkeypatch):
    verifications = []
    verify = authentication._verify_provider_token
    monkeypatch.setattr(authentication, "_verify_provider_token", lambda raw: verifications.append(raw) or verify(raw))
    token = oidc_provider.mint(sub="auth0|alice")

    responses = [me(token) for _ in range(3)]

    assert [response.status_code for response in responses] == [200, 200, 200]
    assert {response.json()["id"] for response in responses} == {User.objects.get(external_id="auth0|alice").pk}
    assert verifications == [token]  # RS256-verified once
    assert token in verified_tokens


def test_a_tampered_token_is_never_served_from_the_cache(oidc_provider):
    token = oidc_provider.mint(sub="auth0|alice")
    assert me(token).status_code == 200  # cached now
    header, payload, signature = token.split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=="))
    forged_payload = base64.urlsafe_b64encode(json.dumps({**claims, "sub": "auth0|admin"}).encode()).rstrip(b"=")
    flipped = signature[:-2] + ("A" if signature[-2] != "A" else "B") + signature[-1]

    assert_refused(me(f"{header}.{forged_payload.decode()}.{signature}"), "Token is invalid.")
    assert_refused(me(f"{header}.{payload}.{flipped}"), "Token is invalid.")
    assert me(f"{token}x").status_code == 401
    assert not User.objects.filter(external_id="auth0|admin").exists()
    assert len(verified_tokens) == 1
    assert me(token).status_code == 200


def test_a_cached_token_past_its_exp_is_refused(oidc_provider, monkeypatch):
    monkeypatch.setattr(authentication, "CLOCK_SKEW_SECONDS", 0)
    expires_at = int(time.time()) + 3
    token = oidc_provider.mint(sub="auth0|alice", exp=expires_at)
    assert me(token).status_code == 200
    assert token in verified_tokens

    time.sleep(max(0.0, expires_at - time.time()) + 0.2)

    assert_refused(me(token), TOKEN_EXPIRED_MESSAGE)
    assert token not in verified_tokens


def test_a_token_already_past_its_exp_within_the_clock_skew_is_accepted_but_not_kept(oidc_provider):
    token = oidc_provider.mint(sub="auth0|alice", exp=int(time.time()) - 5)  # inside the 30 s leeway

    assert me(token).status_code == 200
    assert token not in verified_tokens


def test_the_cache_is_bounded(oidc_provider, settings):
    settings.AUTH0_VERIFIED_TOKEN_CACHE_SIZE = 3
    tokens = [oidc_provider.mint(sub=f"auth0|user{index}") for index in range(5)]

    for token in tokens:
        assert me(token).status_code == 200

    assert len(verified_tokens) == 3
    assert [token in verified_tokens for token in tokens] == [False, False, True, True, True]
    assert me(tokens[0]).status_code == 200  # dropped from the cache: verified again
    assert len(verified_tokens) == 3


def test_a_cache_size_of_zero_keeps_nothing(oidc_provider, settings):
    settings.AUTH0_VERIFIED_TOKEN_CACHE_SIZE = 0
    token = oidc_provider.mint()

    assert me(token).status_code == 200
    assert me(token).status_code == 200
    assert len(verified_tokens) == 0


def test_a_deactivated_user_is_refused_even_with_a_cached_token(oidc_provider):
    token = oidc_provider.mint(sub="auth0|gone")
    assert me(token).status_code == 200
    User.objects.filter(external_id="auth0|gone").update(is_active=False)

    assert_refused(me(token), "User is inactive.")


def test_a_cached_token_is_refused_once_the_audience_changes(oidc_provider, settings):
    token = oidc_provider.mint()
    assert me(token).status_code == 200
    settings.AUTH0_AUDIENCE = "https://another.test/api"

    assert_refused(me(token), "Token is not meant for this API (audience).")


def test_a_withdrawn_key_stops_working_at_the_next_key_fetch_even_for_cached_tokens(oidc_provider, settings):
    settings.AUTH0_JWKS_CACHE_SECONDS = 0.3
    old_key = oidc_provider.key
    token = oidc_provider.mint(sub="auth0|alice")
    assert me(token).status_code == 200
    new_key = oidc_provider.rotate()
    oidc_provider.published_keys = [new_key]  # the provider withdraws the old key

    time.sleep(0.4)  # past the key set's lifetime, which bounds the cached entry's too

    assert_refused(me(token), "Token signed with an unknown key.")
    assert me(oidc_provider.mint(sub="auth0|alice")).status_code == 200
    assert old_key not in oidc_provider.published_keys


def test_the_websocket_path_uses_the_same_checks(oidc_provider):
    expires_at = int(time.time()) + 120
    token = oidc_provider.mint(sub="auth0|ws", exp=expires_at)

    first = authentication.user_for_access_token(token)
    second = authentication.user_for_access_token(token)

    assert first == second and first[1] == expires_at and token in verified_tokens
    User.objects.filter(external_id="auth0|ws").update(is_active=False)
    assert authentication.user_for_access_token(token) == (None, None)
