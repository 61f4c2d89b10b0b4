"""The organization server's environment variables, read by config/settings.py in a fresh process."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PRINT = (
    "import json, django; from django.conf import settings; django.setup(); print(json.dumps({"
    "'actions': settings.CLAIRE_ENABLED_DEVICE_ACTION_IDS, 'cors_all': settings.CORS_ALLOW_ALL_ORIGINS, "
    "'cors': settings.CORS_ALLOWED_ORIGINS, 'issuer': settings.AUTH0_ISSUER, 'jwks': settings.AUTH0_JWKS_URL, "
    "'authorize': settings.OIDC_OP_AUTHORIZATION_ENDPOINT, 'backends': settings.AUTHENTICATION_BACKENDS, "
    "'extra': settings.OIDC_AUTH_REQUEST_EXTRA_PARAMS}))"
)


def settings_with(**env: str) -> subprocess.CompletedProcess:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("CLAIRE__", "AUTH0__", "CORS__", "OIDC_"))}
    return subprocess.run(
        [sys.executable, "-c", PRINT],
        env={**clean, "DJANGO_SETTINGS_MODULE": "config.settings", "SECRET_KEY": "x" * 50, **env},
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )


def read(**env: str) -> dict:
    result = settings_with(**env)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


@pytest.mark.parametrize("raw", ['["open_url", "show_map"]', "open_url, show_map"])
def test_device_action_ids_are_a_json_list_or_comma_separated(raw):
    assert read(CLAIRE__ENABLED_DEVICE_ACTION_IDS=raw)["actions"] == ["open_url", "show_map"]


def test_malformed_device_action_ids_stop_the_start_with_a_clear_message():
    result = settings_with(CLAIRE__ENABLED_DEVICE_ACTION_IDS='["open_url", 3]')

    assert result.returncode != 0
    assert "CLAIRE__ENABLED_DEVICE_ACTION_IDS must be a JSON list of strings." in result.stderr


def test_cors_origins_are_a_comma_list_or_a_star():
    assert read(CORS__ALLOWED_ORIGINS="https://a.example,https://b.example")["cors"] == [
        "https://a.example",
        "https://b.example",
    ]
    assert read(CORS__ALLOWED_ORIGINS="*")["cors_all"] is True
    assert read()["cors"] == [] and read()["cors_all"] is False


def test_the_provider_urls_are_derived_from_the_domain():
    values = read(AUTH0__DOMAIN="tenant.eu.auth0.com", AUTH0__AUDIENCE="https://api.example", OIDC_RP_CLIENT_ID="abc")

    assert values["issuer"] == "https://tenant.eu.auth0.com/"
    assert values["jwks"] == "https://tenant.eu.auth0.com/.well-known/jwks.json"
    assert values["authorize"] == "https://tenant.eu.auth0.com/authorize"
    assert values["extra"] == {"audience": "https://api.example"}
    assert values["backends"][0] == "accounts.oidc.ProviderBackend"


def test_browser_login_is_off_without_a_client_id():
    values = read(AUTH0__DOMAIN="tenant.eu.auth0.com", AUTH0__AUDIENCE="https://api.example")

    assert values["backends"] == ["django.contrib.auth.backends.ModelBackend"]


def test_a_domain_without_an_audience_stops_the_start():
    result = settings_with(AUTH0__DOMAIN="tenant.eu.auth0.com")

    assert result.returncode != 0
    assert "AUTH0__AUDIENCE is not set." in result.stderr
