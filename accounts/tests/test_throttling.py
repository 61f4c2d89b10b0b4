"""Login is throttled per client IP and per submitted email, so passwords can't be brute-forced."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.django_db


def attempt(client, email, ip="10.0.0.1"):
    return client.post(
        "/api/v1/auth/login", {"email": email, "password": "wrong guess!"}, format="json", REMOTE_ADDR=ip
    )


def test_it_throttles_guesses_at_one_email_from_many_ips(api_client, user):
    for n in range(5):
        assert attempt(api_client, user.email, ip=f"10.0.1.{n}").status_code == 401
    blocked = attempt(api_client, user.email.upper(), ip="10.0.2.1")
    assert blocked.status_code == 429
    assert int(blocked["Retry-After"]) > 0
    assert blocked.json()["detail"]["code"] == "throttled"
    # the correct password doesn't get through either while the email is throttled
    ok = api_client.post("/api/v1/auth/login", {"email": user.email, "password": "x"}, format="json")
    assert ok.status_code == 429


def test_it_throttles_one_ip_trying_many_emails(api_client, user):
    for n in range(20):
        assert attempt(api_client, f"guess{n}@example.com").status_code == 401
    blocked = attempt(api_client, "guess-again@example.com")
    assert blocked.status_code == 429
    assert int(blocked["Retry-After"]) > 0


def test_other_clients_are_not_affected(api_client, user, other_user):
    for n in range(5):
        attempt(api_client, user.email, ip=f"10.0.1.{n}")
    from conftest import TEST_PASSWORD

    response = api_client.post(
        "/api/v1/auth/login", {"email": other_user.email, "password": TEST_PASSWORD}, format="json", REMOTE_ADDR="10.9.9.9"
    )
    assert response.status_code == 200


def test_registration_is_throttled_per_ip(api_client):
    for n in range(20):
        body = {"name": "N", "email": f"new{n}@example.com", "password": "a fine passphrase"}
        assert api_client.post("/api/v1/auth/register", body, format="json").status_code == 201
    body = {"name": "N", "email": "one-more@example.com", "password": "a fine passphrase"}
    response = api_client.post("/api/v1/auth/register", body, format="json")
    assert response.status_code == 429
    assert "Retry-After" in response
