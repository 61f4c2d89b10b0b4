"""Sessions end when they should: a password change (REST, Django's form, the admin, the CLI), a
deactivation or a deletion revokes every refresh token of the user; the database keeps nothing
that works as a refresh token."""

from __future__ import annotations

import jwt
import pytest
from django.core.management import call_command
from django.db import connection

from accounts.models import RefreshTokenRecord, User
from conftest import TEST_PASSWORD

pytestmark = pytest.mark.django_db

NEW_PASSWORD = "a brand-new passphrase 77"


def login(api_client, email, password=TEST_PASSWORD) -> dict:
    response = api_client.post("/api/v1/auth/login", {"email": email, "password": password}, format="json")
    assert response.status_code == 200, response.content
    return response.json()


def refresh(api_client, refresh_token):
    return api_client.post("/api/v1/auth/refresh", {"refresh_token": refresh_token}, format="json")


def change_password(api_client, access_token, current, new, **extra):
    api_client.credentials(HTTP_AUTHORIZATION=f"Bearer {access_token}")
    response = api_client.post(
        "/api/v1/auth/password", {"current_password": current, "new_password": new}, format="json", **extra
    )
    api_client.credentials()
    return response


def assert_refused(api_client, *refresh_tokens):
    for token in refresh_tokens:
        response = refresh(api_client, token)
        assert response.status_code == 401, response.content
        assert response.json()["detail"]["code"] == "token_not_valid"


# --- what the database keeps -----------------------------------------------------------------


def test_a_dump_of_every_table_after_login_and_refresh_holds_no_usable_token(api_client, user):
    first = login(api_client, user.email)
    second = refresh(api_client, first["refresh_token"]).json()
    issued = [first["refresh_token"], first["access_token"], second["refresh_token"], second["access_token"]]
    signatures = [token.rsplit(".", 1)[1] for token in issued]

    dumped = []
    with connection.cursor() as cursor:
        for table in connection.introspection.table_names():
            cursor.execute(f"SELECT * FROM {connection.ops.quote_name(table)}")
            dumped += [str(value) for row in cursor.fetchall() for value in row if value is not None]
    assert dumped, "the dump read nothing"
    leaks = [value[:60] for value in dumped if any(sig in value for sig in signatures)]
    assert leaks == [], "a stored value carries a token's signature"
    jti = jwt.decode(second["refresh_token"], options={"verify_signature": False})["jti"]
    record = RefreshTokenRecord.objects.get(jti=jti)
    assert record.user == user and record.revoked_at is None
    assert refresh(api_client, second["refresh_token"]).status_code == 200, "the live token still works"


def test_flushexpiredtokens_deletes_only_expired_records(user):
    from datetime import timedelta

    from django.utils import timezone

    from accounts import services

    services.token_pair_issue(user=user)
    RefreshTokenRecord.objects.create(jti="old", user=user, expires_at=timezone.now() - timedelta(seconds=1))
    call_command("flushexpiredtokens")
    assert list(RefreshTokenRecord.objects.values_list("jti", flat=True).exclude(jti="old")) != []
    assert not RefreshTokenRecord.objects.filter(jti="old").exists()


# --- POST /api/v1/auth/password --------------------------------------------------------------


def test_changing_the_password_over_the_api_revokes_every_refresh_token_and_answers_a_fresh_pair(api_client, user):
    laptop = login(api_client, user.email)
    phone = login(api_client, user.email)

    response = change_password(api_client, laptop["access_token"], TEST_PASSWORD, NEW_PASSWORD)
    assert response.status_code == 200, response.content
    fresh = response.json()
    assert set(fresh) == {"access_token", "refresh_token", "token_type", "expires_in"}

    assert_refused(api_client, laptop["refresh_token"], phone["refresh_token"])
    assert refresh(api_client, fresh["refresh_token"]).status_code == 200
    api_client.credentials(HTTP_AUTHORIZATION=f"Bearer {phone['access_token']}")
    assert api_client.get("/api/v1/auth/me").status_code == 401, "access tokens from before the change are refused"
    api_client.credentials(HTTP_AUTHORIZATION=f"Bearer {fresh['access_token']}")
    assert api_client.get("/api/v1/auth/me").status_code == 200
    user.refresh_from_db()
    assert user.check_password(NEW_PASSWORD)


def test_a_wrong_current_password_is_a_400_on_that_field_and_changes_nothing(api_client, user):
    pair = login(api_client, user.email)
    response = change_password(api_client, pair["access_token"], "not my password", NEW_PASSWORD)
    assert response.status_code == 400
    body = response.json()["detail"]
    assert body["code"] == "invalid" and list(body["fields"]) == ["current_password"]
    assert refresh(api_client, pair["refresh_token"]).status_code == 200
    user.refresh_from_db()
    assert user.check_password(TEST_PASSWORD)


@pytest.mark.parametrize("weak", ["12345678", "password", "alice@example.com"])
def test_the_new_password_goes_through_the_password_validators(api_client, user, weak):
    pair = login(api_client, user.email)
    response = change_password(api_client, pair["access_token"], TEST_PASSWORD, weak)
    assert response.status_code == 400
    assert list(response.json()["detail"]["fields"]) == ["new_password"]


def test_the_password_endpoint_needs_authentication(api_client):
    response = api_client.post(
        "/api/v1/auth/password", {"current_password": "x", "new_password": NEW_PASSWORD}, format="json"
    )
    assert response.status_code == 401


def test_guesses_at_the_current_password_are_throttled_like_logins(api_client, user):
    token = login(api_client, user.email)["access_token"]  # one of the 5 per email per minute
    guesses = [
        change_password(api_client, token, f"guess {n}", NEW_PASSWORD, REMOTE_ADDR=f"10.0.3.{n}").status_code
        for n in range(4)
    ]
    assert guesses == [400] * 4
    blocked = change_password(api_client, token, TEST_PASSWORD, NEW_PASSWORD, REMOTE_ADDR="10.0.4.1")
    assert blocked.status_code == 429 and blocked.json()["detail"]["code"] == "throttled"
    user.refresh_from_db()
    assert user.check_password(TEST_PASSWORD)


# --- every other way of changing a password, deactivating or deleting ------------------------


def test_djangos_password_change_form_revokes_refresh_tokens(api_client, client, user):
    pair = login(api_client, user.email)
    client.force_login(user)
    response = client.post(
        "/accounts/password_change/",
        {"old_password": TEST_PASSWORD, "new_password1": NEW_PASSWORD, "new_password2": NEW_PASSWORD},
    )
    assert response.status_code == 302, response.content[:500]
    assert_refused(api_client, pair["refresh_token"])


@pytest.fixture
def staff_client(client, make_user):
    client.force_login(make_user(is_staff=True, is_superuser=True))
    return client


def test_the_admins_password_change_revokes_refresh_tokens(api_client, staff_client, user):
    pair = login(api_client, user.email)
    response = staff_client.post(
        f"/admin/accounts/user/{user.pk}/password/",
        {"password1": NEW_PASSWORD, "password2": NEW_PASSWORD, "usable_password": "true"},
    )
    assert response.status_code == 302, response.content[:800]
    user.refresh_from_db()
    assert user.check_password(NEW_PASSWORD)
    assert_refused(api_client, pair["refresh_token"])


def test_the_admin_disabling_password_login_revokes_refresh_tokens(api_client, staff_client, user):
    pair = login(api_client, user.email)
    response = staff_client.post(
        f"/admin/accounts/user/{user.pk}/password/", {"usable_password": "false", "unset-password": "1"}
    )
    assert response.status_code == 302, response.content[:800]
    user.refresh_from_db()
    assert not user.has_usable_password()
    assert_refused(api_client, pair["refresh_token"])


def test_the_changepassword_command_revokes_refresh_tokens(api_client, user, monkeypatch):
    from django.contrib.auth.management.commands import changepassword

    pair = login(api_client, user.email)
    # The command reads the password from the terminal (getpass); answer its two prompts.
    monkeypatch.setattr(changepassword.Command, "_get_pass", lambda self, prompt="": NEW_PASSWORD)
    call_command("changepassword", user.email)
    user.refresh_from_db()
    assert user.check_password(NEW_PASSWORD)
    assert_refused(api_client, pair["refresh_token"])


def test_deactivating_a_user_in_the_admin_revokes_refresh_tokens_and_reactivating_does_not_revive_them(
    api_client, staff_client, user
):
    pair = login(api_client, user.email)
    form = {
        "email": user.email, "name": user.name, "provider": "PASS", "external_id": "", "is_active": "",
        "last_login_0": "", "last_login_1": "",
    }  # fmt: skip
    response = staff_client.post(f"/admin/accounts/user/{user.pk}/change/", form)
    assert response.status_code == 302, response.content[:800]
    user.refresh_from_db()
    assert not user.is_active
    user.is_active = True
    user.save()
    assert_refused(api_client, pair["refresh_token"])


def test_a_rehash_at_login_does_not_end_sessions(api_client, user, settings):
    pair = login(api_client, user.email)
    # A hasher change makes the next login re-hash the password: not a password change.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.PBKDF2PasswordHasher", *settings.PASSWORD_HASHERS]
    login(api_client, user.email)
    user.refresh_from_db()
    assert user.password.startswith("pbkdf2_")
    assert refresh(api_client, pair["refresh_token"]).status_code == 200


def test_saving_a_user_without_a_password_change_keeps_their_sessions(api_client, user):
    pair = login(api_client, user.email)
    user.name = "Alice Renamed"
    user.save()
    assert refresh(api_client, pair["refresh_token"]).status_code == 200


def test_deleting_a_user_leaves_no_token_records(user):
    from accounts import services

    services.token_pair_issue(user=user)
    User.objects.filter(pk=user.pk).delete()
    assert not RefreshTokenRecord.objects.exists()
