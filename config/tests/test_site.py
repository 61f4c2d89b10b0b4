"""Site-wide behaviour: health, the API schema, error bodies, request ids, settings checks."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
import yaml
from django.conf import settings
from django.core.management import call_command

pytestmark = pytest.mark.django_db


def test_health_reports_name_status_version_and_database(client):
    for path in ("/", "/health"):
        response = client.get(path)
        assert response.status_code == 200
        assert response.json() == {"name": "Conduit", "status": "ok", "version": settings.VERSION, "database": "ok"}


def test_health_reports_an_unreachable_database_as_503(client, monkeypatch):
    from config import views

    monkeypatch.setattr(views, "connection", _BrokenConnection())
    response = client.get("/health")
    assert response.status_code == 503
    assert response.json()["status"] == "error" and response.json()["database"] == "unreachable"


class _BrokenConnection:
    def cursor(self):
        from django.db import OperationalError

        raise OperationalError("connection refused")


def test_unknown_paths_answer_a_json_404(client):
    response = client.get("/no/such/page")
    assert response.status_code == 404
    assert response.json()["detail"]["code"] == "not_found"


def test_a_host_not_allowed_answers_a_json_400(client):
    response = client.get("/health", HTTP_HOST="evil.example", HTTP_X_REQUEST_ID="trace-host")

    assert response.status_code == 400
    assert response["Content-Type"] == "application/json"
    assert response.json()["detail"] == {
        "message": "The Host header names a host this server does not serve.",
        "code": "disallowed_host",
        "request_id": "trace-host",
    }


def test_every_answer_carries_a_request_id_and_errors_repeat_it(client):
    response = client.get("/api/v1/auth/me", HTTP_X_REQUEST_ID="trace-123")
    assert response["X-Request-ID"] == "trace-123"
    assert response.json()["detail"]["request_id"] == "trace-123"
    generated = client.get("/health")["X-Request-ID"]
    assert len(generated) == 32


def test_an_unsafe_request_id_is_replaced(client):
    response = client.get("/health", HTTP_X_REQUEST_ID="bad id\nwith newline")
    assert response["X-Request-ID"] != "bad id\nwith newline" and len(response["X-Request-ID"]) == 32


def test_the_openapi_schema_validates_and_describes_bearer_auth(tmp_path):
    out = tmp_path / "schema.yaml"
    call_command("spectacular", "--validate", "--fail-on-warn", "--file", str(out))
    schema = yaml.safe_load(out.read_text())
    schemes = schema["components"]["securitySchemes"]
    assert any(s.get("scheme") == "bearer" and s.get("type") == "http" for s in schemes.values())
    assert "/api/v1/auth/login" in schema["paths"]


def test_swagger_ui_is_served_without_any_cdn(client):
    response = client.get("/api/docs/")
    assert response.status_code == 200
    page = response.content.decode()
    assert "swagger-ui" in page and "cdn.jsdelivr" not in page


def test_it_refuses_to_start_without_a_secret_key_outside_debug():
    env = {**os.environ, "SECRET_KEY": "", "DEBUG": "0", "DJANGO_SETTINGS_MODULE": "config.settings"}
    result = subprocess.run(
        [sys.executable, "-c", "import django; django.setup()"],
        cwd=settings.BASE_DIR, env=env, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert result.returncode != 0
    assert "SECRET_KEY is not set" in result.stderr


def test_the_server_error_handler_answers_json_without_a_traceback(rf):
    from config.views import server_error

    response = server_error(rf.get("/"))
    assert response.status_code == 500
    assert b"Traceback" not in response.content
    assert b'"code": "server_error"' in response.content
