"""Personal API keys: created once-shown, listed without the secret, stored only as a keyed hash,
accepted as a bearer token wherever an access token is, refused at once when revoked, expired or
when their user is deactivated; staff list and revoke them in admin."""

from __future__ import annotations

import hashlib
import hmac
from datetime import timedelta

import pytest
from django.db import connection
from django.utils import timezone

from accounts import services
from accounts.models import ApiKey
from conftest import TEST_PASSWORD

pytestmark = pytest.mark.django_db


def create_key(client, **body) -> dict:
    response = client.post("/api/v1/auth/api-keys", {"name": "editor", **body}, format="json")
    assert response.status_code == 201, response.content
    return response.json()


def me_with(api_client, key: str):
    api_client.credentials(HTTP_AUTHORIZATION=f"Bearer {key}")
    response = api_client.get("/api/v1/auth/me")
    api_client.credentials()
    return response


def test_it_shows_the_key_once_and_lists_it_without_the_secret(auth_client, user):
    created = create_key(auth_client, name="my editor")

    key = created["key"]
    assert key.startswith("cdk_") and len(key) >= 4 + 32
    assert created["prefix"] == key[:12] and created["name"] == "my editor"
    listed = auth_client.get("/api/v1/auth/api-keys")
    assert listed.status_code == 200
    [item] = listed.json()
    assert item == {
        "id": created["id"], "name": "my editor", "prefix": key[:12], "created_at": created["created_at"],
        "last_used_at": None, "expires_at": None,
    }  # fmt: skip
    assert key not in listed.content.decode()


def test_it_stores_only_a_keyed_hash(auth_client, settings):
    key = create_key(auth_client)["key"]

    stored = ApiKey.objects.get()
    expected = hmac.new(settings.API_KEY_HASH_KEY.encode(), key.encode(), hashlib.sha256).hexdigest()
    assert stored.key_hash == expected
    assert stored.key_hash != hashlib.sha256(key.encode()).hexdigest()  # keyed, not a plain hash
    with connection.cursor() as cursor:
        cursor.execute("SELECT * FROM accounts_apikey")
        row = " ".join(str(value) for value in cursor.fetchone())
    assert key not in row and key[12:] not in row


def test_each_key_is_random(auth_client):
    keys = {create_key(auth_client)["key"] for _ in range(5)}
    assert len(keys) == 5 and len({key[:12] for key in keys}) == 5


def test_a_key_signs_in_like_an_access_token(api_client, auth_client, user):
    key = create_key(auth_client)["key"]

    response = me_with(api_client, key)

    assert response.status_code == 200
    assert response.json()["email"] == user.email


def test_a_key_works_on_the_other_apis_too(api_client, auth_client):
    key = create_key(auth_client)["key"]
    api_client.credentials(HTTP_AUTHORIZATION=f"Bearer {key}")
    assert api_client.get("/api/v1/agents").status_code == 200


@pytest.mark.parametrize("key", ["cdk_not-a-key", "cdk_", "cdk_" + "x" * 300])
def test_an_unknown_key_is_a_401(api_client, key):
    response = me_with(api_client, key)
    assert response.status_code == 401
    assert response.json()["detail"]["code"] == "invalid_api_key"


def test_a_revoked_key_is_refused_at_once(api_client, auth_client):
    created = create_key(auth_client)
    assert me_with(api_client, created["key"]).status_code == 200

    assert auth_client.delete(f"/api/v1/auth/api-keys/{created['id']}").status_code == 204

    response = me_with(api_client, created["key"])
    assert response.status_code == 401
    assert "revoked" in response.json()["detail"]["message"]
    assert auth_client.get("/api/v1/auth/api-keys").json() == []
    assert ApiKey.objects.get().revoked_at is not None  # kept for the admin's record


def test_another_users_key_cannot_be_revoked(auth_client, client_for, other_user):
    theirs = create_key(client_for(other_user))

    response = auth_client.delete(f"/api/v1/auth/api-keys/{theirs['id']}")

    assert response.status_code == 404
    assert ApiKey.objects.get().revoked_at is None


def test_an_expired_key_is_refused(api_client, auth_client):
    created = create_key(auth_client, expires_at=(timezone.now() + timedelta(hours=1)).isoformat())
    assert me_with(api_client, created["key"]).status_code == 200

    ApiKey.objects.update(expires_at=timezone.now() - timedelta(seconds=1))

    response = me_with(api_client, created["key"])
    assert response.status_code == 401
    assert "expired" in response.json()["detail"]["message"]


def test_an_expiry_in_the_past_is_a_400(auth_client):
    response = auth_client.post(
        "/api/v1/auth/api-keys", {"name": "x", "expires_at": "2001-01-01T00:00:00Z"}, format="json"
    )
    assert response.status_code == 400
    assert "expires_at" in response.json()["detail"]["fields"]


@pytest.mark.parametrize("body", [{}, {"name": ""}, {"name": "x" * 101}, {"name": "ok", "expires_at": "soon"}])
def test_a_bad_body_is_a_400_naming_the_field(auth_client, body):
    response = auth_client.post("/api/v1/auth/api-keys", body, format="json")
    assert response.status_code == 400
    assert set(response.json()["detail"]["fields"]) & {"name", "expires_at"}


def test_the_number_of_keys_per_user_is_limited(auth_client, settings):
    settings.API_KEYS_MAX_PER_USER = 2
    first = create_key(auth_client)
    create_key(auth_client)

    refused = auth_client.post("/api/v1/auth/api-keys", {"name": "third"}, format="json")
    assert refused.status_code == 400
    assert "at most 2" in str(refused.json()["detail"]["fields"])

    auth_client.delete(f"/api/v1/auth/api-keys/{first['id']}")  # a revoked key frees its place
    create_key(auth_client)


def test_a_deactivated_users_keys_stop_working_and_stay_dead(api_client, auth_client, user):
    key = create_key(auth_client)["key"]

    user.is_active = False
    user.save()
    assert me_with(api_client, key).status_code == 401

    user.is_active = True  # reactivation does not bring old keys back
    user.save()
    assert me_with(api_client, key).status_code == 401
    assert ApiKey.objects.get().revoked_at is not None


def test_a_key_survives_a_password_change(api_client, auth_client, user):
    key = create_key(auth_client)["key"]

    changed = auth_client.post(
        "/api/v1/auth/password", {"current_password": TEST_PASSWORD, "new_password": "another fine passphrase 9"},
        format="json",
    )  # fmt: skip
    assert changed.status_code == 200

    assert me_with(api_client, key).status_code == 200


def test_last_used_is_written_at_most_once_a_minute(api_client, auth_client, django_assert_num_queries):
    key = create_key(auth_client)["key"]
    assert me_with(api_client, key).status_code == 200
    first_use = ApiKey.objects.get().last_used_at
    assert first_use is not None

    with django_assert_num_queries(1):  # the lookup only: no write
        services.api_key_authenticate(raw_key=key)
    assert ApiKey.objects.get().last_used_at == first_use

    ApiKey.objects.update(last_used_at=timezone.now() - timedelta(minutes=2))
    services.api_key_authenticate(raw_key=key)
    assert ApiKey.objects.get().last_used_at > first_use


def test_the_key_endpoints_need_a_signed_in_user(api_client):
    assert api_client.get("/api/v1/auth/api-keys").status_code == 401
    assert api_client.post("/api/v1/auth/api-keys", {"name": "x"}, format="json").status_code == 401


# --- admin ---------------------------------------------------------------------------------------


@pytest.fixture
def staff_client(client, make_user):
    client.force_login(make_user(is_staff=True, is_superuser=True))
    return client


def test_staff_list_search_and_open_keys_in_admin_without_the_secret(staff_client, auth_client, user):
    created = create_key(auth_client, name="laptop script")

    changelist = staff_client.get("/admin/accounts/apikey/")
    searched = staff_client.get("/admin/accounts/apikey/", {"q": user.email})
    filtered = staff_client.get("/admin/accounts/apikey/", {"revoked_at__isempty": "1"})
    change = staff_client.get(f"/admin/accounts/apikey/{created['id']}/change/")

    for page in (changelist, searched, filtered, change):
        assert page.status_code == 200
        assert created["key"] not in page.content.decode()
        assert ApiKey.objects.get().key_hash not in page.content.decode()
    assert "laptop script" in changelist.content.decode() and created["prefix"] in changelist.content.decode()
    assert staff_client.get("/admin/accounts/apikey/add/").status_code == 403


def test_staff_revoke_keys_in_admin(staff_client, api_client, auth_client):
    created = create_key(auth_client)

    response = staff_client.post(
        "/admin/accounts/apikey/", {"action": "revoke", "_selected_action": [created["id"]]}, follow=True
    )

    assert response.status_code == 200
    assert "Revoked 1 API key" in response.content.decode()
    assert me_with(api_client, created["key"]).status_code == 401
