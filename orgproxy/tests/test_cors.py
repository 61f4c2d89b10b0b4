from __future__ import annotations

import pytest

pytestmark = pytest.mark.django_db


def test_it_answers_preflight_for_an_allowed_origin(client, settings):
    settings.CORS_ALLOWED_ORIGINS = ["https://widget.example.com"]

    response = client.options(
        "/session",
        HTTP_ORIGIN="https://widget.example.com",
        HTTP_ACCESS_CONTROL_REQUEST_METHOD="POST",
        HTTP_ACCESS_CONTROL_REQUEST_HEADERS="authorization",
    )

    assert response.status_code == 200
    assert response["Access-Control-Allow-Origin"] == "https://widget.example.com"
    assert "authorization" in response["Access-Control-Allow-Headers"]


def test_it_sends_no_cors_headers_to_other_origins(client, settings):
    settings.CORS_ALLOWED_ORIGINS = ["https://widget.example.com"]

    response = client.get("/health", HTTP_ORIGIN="https://evil.example.com")

    assert "Access-Control-Allow-Origin" not in response


def test_a_star_allows_every_origin(client, settings):
    settings.CORS_ALLOW_ALL_ORIGINS = True

    response = client.get("/health", HTTP_ORIGIN="https://anywhere.example.com")

    assert response["Access-Control-Allow-Origin"] == "*"
    assert response["Access-Control-Expose-Headers"] == "X-Request-ID, X-Session-ID"
