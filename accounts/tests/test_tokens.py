"""Access tokens that must be refused: expired, forged, unsigned, revoked, or of the wrong kind."""

from __future__ import annotations

import base64
import json
import threading
import time
from datetime import timedelta

import jwt
import pytest
from django.conf import settings
from django.db import OperationalError, connections
from rest_framework_simplejwt.exceptions import TokenError
from rest_framework_simplejwt.tokens import AccessToken

from accounts import services

pytestmark = pytest.mark.django_db


def _b64(data: dict) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


def _claims_of(token: str) -> dict:
    return jwt.decode(token, options={"verify_signature": False})


def _get_me(api_client, token: str):
    api_client.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
    return api_client.get("/api/v1/auth/me")


def test_a_valid_token_is_accepted(api_client, user):
    token = services.token_pair_issue(user=user)["access_token"]
    assert _get_me(api_client, token).status_code == 200


def test_an_expired_token_is_rejected(api_client, user):
    token = AccessToken.for_user(user)
    token.set_exp(lifetime=-timedelta(seconds=1))
    response = _get_me(api_client, str(token))
    assert response.status_code == 401
    assert response.json()["detail"]["code"] == "token_expired"
    assert response.json()["detail"]["message"].startswith("The access token has expired; get a new one")


def test_an_expired_token_signed_with_another_key_is_not_called_expired(api_client, user):
    token = AccessToken.for_user(user)
    token.set_exp(lifetime=-timedelta(seconds=1))
    forged = jwt.encode(dict(token.payload), "another-key", algorithm="HS256")
    response = _get_me(api_client, forged)
    assert response.status_code == 401 and response.json()["detail"]["code"] == "token_not_valid"


def test_a_token_signed_with_another_key_is_rejected(api_client, user):
    claims = _claims_of(services.token_pair_issue(user=user)["access_token"])
    forged = jwt.encode(claims, "not-the-signing-key-but-long-enough-for-hs256", algorithm="HS256")
    assert _get_me(api_client, forged).status_code == 401


def test_a_token_with_a_tampered_payload_is_rejected(api_client, user, other_user):
    header, _, signature = services.token_pair_issue(user=user)["access_token"].split(".")
    claims = _claims_of(services.token_pair_issue(user=user)["access_token"])
    claims["user_id"] = str(other_user.pk)
    assert _get_me(api_client, f"{header}.{_b64(claims)}.{signature}").status_code == 401


def test_an_unsigned_alg_none_token_is_rejected(api_client, user):
    claims = _claims_of(services.token_pair_issue(user=user)["access_token"])
    unsigned = f"{_b64({'alg': 'none', 'typ': 'JWT'})}.{_b64(claims)}."
    assert _get_me(api_client, unsigned).status_code == 401


def test_a_refresh_token_is_not_accepted_as_an_access_token(api_client, user):
    refresh = services.token_pair_issue(user=user)["refresh_token"]
    assert _get_me(api_client, refresh).status_code == 401


def test_a_token_from_another_issuer_is_rejected(api_client, user):
    claims = _claims_of(services.token_pair_issue(user=user)["access_token"])
    claims["iss"] = "someone-else"
    token = jwt.encode(claims, settings.SIMPLE_JWT["SIGNING_KEY"], algorithm="HS256")
    assert _get_me(api_client, token).status_code == 401


def test_a_token_of_an_inactive_user_is_rejected(api_client, user):
    token = services.token_pair_issue(user=user)["access_token"]
    user.is_active = False
    user.save()
    assert _get_me(api_client, token).status_code == 401


def test_the_jwt_signing_key_is_not_the_secret_key():
    assert settings.SIMPLE_JWT["SIGNING_KEY"] != settings.SECRET_KEY


def test_a_used_refresh_token_cannot_be_used_again(user):
    refresh = services.token_pair_issue(user=user)["refresh_token"]
    services.token_pair_rotate(refresh_token=refresh)
    with pytest.raises(TokenError):
        services.token_pair_rotate(refresh_token=refresh)


@pytest.mark.django_db(transaction=True)
def test_concurrent_uses_of_one_refresh_token_mint_only_one_pair(user):
    """The blacklist insert is unique, so of several uses racing each other exactly one wins."""
    refresh = services.token_pair_issue(user=user)["refresh_token"]
    start = threading.Barrier(4)
    outcomes: list[str] = []

    def use_it() -> None:
        start.wait()
        try:
            services.token_pair_rotate(refresh_token=refresh)
            outcomes.append("ok")
        except TokenError:
            outcomes.append("refused")
        except OperationalError:  # SQLite's writer lock timing out counts as refused, too
            outcomes.append("refused")
        finally:
            connections.close_all()

    threads = [threading.Thread(target=use_it) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(outcomes) == ["ok", "refused", "refused", "refused"]


def test_an_expired_refresh_token_cannot_be_used(api_client, user):
    from rest_framework_simplejwt.tokens import RefreshToken

    token = RefreshToken.for_user(user)
    token.set_exp(lifetime=-timedelta(seconds=1))
    response = api_client.post("/api/v1/auth/refresh", {"refresh_token": str(token)}, format="json")
    assert response.status_code == 401


def test_tokens_carry_an_expiry_close_to_the_configured_lifetime(user):
    claims = _claims_of(services.token_pair_issue(user=user)["access_token"])
    assert abs(claims["exp"] - time.time() - 900) < 5
