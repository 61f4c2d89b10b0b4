"""The five auth endpoints, end to end against the real database."""

from __future__ import annotations

import pytest

from accounts.models import User

pytestmark = pytest.mark.django_db

PASSWORD = "correct horse battery staple"


def register(client, **overrides):
    body = {"name": "Ada Lovelace", "email": "ada@example.com", "password": PASSWORD, "provider": "PASS"}
    body.update(overrides)
    return client.post("/api/v1/auth/register", body, format="json")


def login(client, email="ada@example.com", password=PASSWORD):
    return client.post("/api/v1/auth/login", {"email": email, "password": password}, format="json")


def test_the_whole_token_lifecycle(api_client):
    created = register(api_client)
    assert created.status_code == 201
    user = created.json()
    assert set(user) == {"id", "name", "email", "provider", "is_active", "created_at", "updated_at"}
    assert user["email"] == "ada@example.com" and user["provider"] == "PASS" and user["is_active"] is True

    logged_in = login(api_client)
    assert logged_in.status_code == 200
    pair = logged_in.json()
    assert set(pair) == {"access_token", "refresh_token", "token_type", "expires_in"}
    assert pair["token_type"] == "bearer" and pair["expires_in"] == 900

    api_client.credentials(HTTP_AUTHORIZATION=f"Bearer {pair['access_token']}")
    me = api_client.get("/api/v1/auth/me")
    assert me.status_code == 200 and me.json() == user | {"updated_at": me.json()["updated_at"]}
    api_client.credentials()

    refreshed = api_client.post("/api/v1/auth/refresh", {"refresh_token": pair["refresh_token"]}, format="json")
    assert refreshed.status_code == 200
    new_pair = refreshed.json()
    assert new_pair["refresh_token"] != pair["refresh_token"] and new_pair["token_type"] == "bearer"

    replayed = api_client.post("/api/v1/auth/refresh", {"refresh_token": pair["refresh_token"]}, format="json")
    assert replayed.status_code == 401
    assert replayed.json()["detail"]["code"] == "token_not_valid"

    logged_out = api_client.post("/api/v1/auth/logout", {"refresh_token": new_pair["refresh_token"]}, format="json")
    assert logged_out.status_code == 204

    after_logout = api_client.post("/api/v1/auth/refresh", {"refresh_token": new_pair["refresh_token"]}, format="json")
    assert after_logout.status_code == 401


def test_it_stores_passwords_as_argon2_hashes(api_client, settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.Argon2PasswordHasher"]
    assert register(api_client).status_code == 201
    stored = User.objects.get(email="ada@example.com").password
    assert stored.startswith("argon2$argon2id$")
    assert PASSWORD not in stored
    assert login(api_client).status_code == 200


@pytest.mark.parametrize("email", ["ada@example.com", "ADA@example.com", "Ada@Example.COM"])
def test_it_rejects_a_duplicate_email_in_any_letter_case(api_client, email):
    assert register(api_client).status_code == 201
    response = register(api_client, email=email)
    assert response.status_code == 400
    assert response.json()["detail"]["fields"] == {"email": ["A user with this email already exists."]}
    assert User.objects.count() == 1


def test_it_logs_in_whatever_the_letter_case_of_the_email(api_client):
    register(api_client)
    assert login(api_client, email="ADA@Example.com").status_code == 200


def test_wrong_password_and_unknown_email_get_the_same_401(api_client):
    register(api_client)
    wrong_password = login(api_client, password="not the password at all")
    unknown_email = login(api_client, email="nobody@example.com")
    assert wrong_password.status_code == unknown_email.status_code == 401
    for response in (wrong_password, unknown_email):
        detail = response.json()["detail"]
        assert (detail["message"], detail["code"]) == ("Invalid email or password.", "invalid_credentials")


def test_inactive_users_cannot_log_in(api_client):
    register(api_client)
    User.objects.filter(email="ada@example.com").update(is_active=False)
    response = login(api_client)
    assert response.status_code == 401
    assert response.json()["detail"]["code"] == "invalid_credentials"


def test_a_deactivated_user_cannot_refresh(api_client):
    register(api_client)
    refresh_token = login(api_client).json()["refresh_token"]
    User.objects.filter(email="ada@example.com").update(is_active=False)
    response = api_client.post("/api/v1/auth/refresh", {"refresh_token": refresh_token}, format="json")
    assert response.status_code == 401


@pytest.mark.parametrize(
    ("overrides", "field", "message"),
    [
        ({"name": ""}, "name", "This field may not be blank."),
        ({"name": "x" * 256}, "name", "Ensure this field has no more than 255 characters."),
        ({"email": "not-an-email"}, "email", "Enter a valid email address."),
        ({"password": "short"}, "password", "Ensure this field has at least 8 characters."),
        ({"password": "password123"}, "password", "This password is too common."),
        ({"password": "12345678901"}, "password", "This password is entirely numeric."),
        ({"provider": "GITHUB"}, "provider", "Only PASS accounts register here; GITHUB users sign in through their provider."),
        ({"provider": "FACEBOOK"}, "provider", '"FACEBOOK" is not a valid choice.'),
    ],
)
def test_registration_rejects_bad_input_field_by_field(api_client, overrides, field, message):
    response = register(api_client, **overrides)
    assert response.status_code == 400
    body = response.json()["detail"]
    assert body["code"] == "invalid"
    assert message in body["fields"][field]
    assert not User.objects.exists()


def test_registration_names_every_missing_field(api_client):
    response = api_client.post("/api/v1/auth/register", {}, format="json")
    assert response.status_code == 400
    assert set(response.json()["detail"]["fields"]) == {"name", "email", "password"}


def test_malformed_json_is_a_400_not_a_500(api_client):
    response = api_client.post("/api/v1/auth/login", "{not json", content_type="application/json")
    assert response.status_code == 400
    assert response.json()["detail"]["code"] == "parse_error"


def test_the_password_never_appears_in_answers(api_client):
    created = register(api_client)
    assert PASSWORD not in created.content.decode()
    assert "password" not in created.json()


def test_logout_of_a_garbage_token_is_a_401(api_client):
    response = api_client.post("/api/v1/auth/logout", {"refresh_token": "garbage"}, format="json")
    assert response.status_code == 401


def test_an_access_token_is_not_accepted_as_a_refresh_token(api_client):
    register(api_client)
    access = login(api_client).json()["access_token"]
    response = api_client.post("/api/v1/auth/refresh", {"refresh_token": access}, format="json")
    assert response.status_code == 401


def test_me_without_a_token_is_a_401_asking_for_a_bearer_token(api_client):
    response = api_client.get("/api/v1/auth/me")
    assert response.status_code == 401
    assert response["WWW-Authenticate"].startswith("Bearer")
    assert response.json()["detail"]["code"] == "not_authenticated"


def test_changing_the_password_revokes_existing_access_tokens(api_client):
    register(api_client)
    access = login(api_client).json()["access_token"]
    user = User.objects.get(email="ada@example.com")
    user.set_password("another long passphrase")
    user.save()
    api_client.credentials(HTTP_AUTHORIZATION=f"Bearer {access}")
    assert api_client.get("/api/v1/auth/me").status_code == 401
