"""Secrets are encrypted at rest, never returned by the API, and keys can be rotated."""

from __future__ import annotations

import json

import pytest
from cryptography.fernet import Fernet
from django.core.management import call_command
from django.db import connection

from agents.fields import EncryptionKeyError, mask_secret
from agents.models import Integration, LLMProviderConfig

API_KEY = "sk-ant-api03-THE-PLAINTEXT-KEY-abcd"
TOKEN = "ghp_THE-PLAINTEXT-TOKEN-wxyz"


def _raw_row(model, pk: int) -> str:
    table = connection.ops.quote_name(model._meta.db_table)
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT * FROM {table} WHERE id = %s", [pk])
        return repr(cursor.fetchone())


def test_it_keeps_api_keys_out_of_the_raw_database_row(make_llm_config, user):
    config = make_llm_config(user, api_key=API_KEY)

    row = _raw_row(LLMProviderConfig, config.pk)

    assert "PLAINTEXT" not in row
    assert LLMProviderConfig.objects.get(pk=config.pk).api_key == API_KEY


def test_it_keeps_integration_credentials_out_of_the_raw_database_row(make_integration, user):
    integration = make_integration(user, credentials={"token": TOKEN})

    row = _raw_row(Integration, integration.pk)

    assert "PLAINTEXT" not in row
    assert Integration.objects.get(pk=integration.pk).credentials == {"token": TOKEN}


def test_it_never_returns_the_api_key(auth_client, user):
    created = auth_client.post("/api/v1/llm-configs", {"name": "Mine", "api_key": API_KEY}, format="json")
    listed = auth_client.get("/api/v1/llm-configs")
    detail = auth_client.get(f"/api/v1/llm-configs/{created.json()['id']}")

    assert created.status_code == 201, created.content
    for response in (created, listed, detail):
        assert "PLAINTEXT" not in response.content.decode()
    body = detail.json()
    assert "api_key" not in body
    assert body["has_api_key"] is True
    assert body["api_key_masked"] == "sk-ant…abcd"


def test_it_never_returns_integration_credentials(auth_client, user):
    created = auth_client.post(
        "/api/v1/integrations",
        {"provider": "github", "auth_type": "pat", "credentials": {"token": TOKEN}},
        format="json",
    )
    listed = auth_client.get("/api/v1/integrations")

    assert created.status_code == 201, created.content
    for response in (created, listed):
        assert "PLAINTEXT" not in response.content.decode()
    assert created.json()["credentials_masked"] == {"token": "ghp_T…wxyz"}
    assert created.json()["has_credentials"] is True


def test_it_keeps_the_key_when_an_update_omits_it_and_clears_it_when_empty(auth_client, make_llm_config, user):
    config = make_llm_config(user, api_key=API_KEY)

    auth_client.patch(f"/api/v1/llm-configs/{config.pk}", {"name": "renamed"}, format="json")
    config.refresh_from_db()
    assert config.api_key == API_KEY

    auth_client.patch(f"/api/v1/llm-configs/{config.pk}", {"api_key": ""}, format="json")
    config.refresh_from_db()
    assert config.api_key == ""


def test_it_refuses_to_decrypt_with_a_wrong_key_instead_of_returning_ciphertext(make_llm_config, user, settings):
    config = make_llm_config(user, api_key=API_KEY)
    settings.FIELD_ENCRYPTION_KEYS = [Fernet.generate_key().decode()]

    with pytest.raises(EncryptionKeyError, match="agents.LLMProviderConfig.api_key"):
        LLMProviderConfig.objects.get(pk=config.pk)


def test_it_rotates_keys(make_llm_config, make_integration, user, settings):
    old_key, new_key = settings.FIELD_ENCRYPTION_KEYS[0], Fernet.generate_key().decode()
    config = make_llm_config(user, api_key=API_KEY)
    integration = make_integration(user, credentials=TOKEN)
    updated_at = LLMProviderConfig.objects.get(pk=config.pk).updated_at
    settings.FIELD_ENCRYPTION_KEYS = [new_key, old_key]

    call_command("rotate_encryption_keys", stdout=open("/dev/null", "w"))

    settings.FIELD_ENCRYPTION_KEYS = [new_key]  # the old key is gone: values must still decrypt
    rotated = LLMProviderConfig.objects.get(pk=config.pk)
    assert rotated.api_key == API_KEY
    assert rotated.updated_at == updated_at  # rotation is not an edit
    assert Integration.objects.get(pk=integration.pk).credentials == TOKEN
    assert "PLAINTEXT" not in _raw_row(LLMProviderConfig, config.pk)


def test_it_derives_a_working_key_from_the_secret_key(settings):
    # The default key (from SECRET_KEY) is a valid Fernet key.
    Fernet(settings.FIELD_ENCRYPTION_KEYS[0])


@pytest.mark.parametrize(
    "secret, masked",
    [
        ("", ""),
        ("short", "••••••••"),
        ("nineteen-characters", "••••••••"),
        ("sk-ant-api03-abcdefghijklmnop-abcd", "sk-ant…abcd"),
        ("abcdefghijklmnopqrst", "abcd…qrst"),
    ],
)
def test_it_masks_secrets(secret, masked):
    assert mask_secret(secret) == masked


def test_it_keeps_secrets_out_of_the_admin_change_form(client, make_llm_config, make_integration, make_user):
    admin = make_user(is_staff=True, is_superuser=True)
    config = make_llm_config(None, api_key=API_KEY)
    integration = make_integration(None, credentials=json.loads(json.dumps({"token": TOKEN})))
    client.force_login(admin)

    for url in (
        f"/admin/agents/llmproviderconfig/{config.pk}/change/",
        f"/admin/agents/integration/{integration.pk}/change/",
        "/admin/agents/llmproviderconfig/",
        "/admin/agents/integration/",
    ):
        page = client.get(url).content.decode()
        assert "PLAINTEXT" not in page, url
