"""CORS, when origins are configured: a browser's preflight for the official OpenAI JS SDK's request
(its `x-stainless-*` headers) and for a /v1 client continuing a session is allowed, and browsers may
read X-Session-ID and X-Request-ID. Real preflights through the served application, in process."""

from __future__ import annotations

import json

import pytest

from config.asgi import application
from config.testing.asgi import asgi_request

pytestmark = pytest.mark.django_db(transaction=True)

ORIGIN = "https://app.example.org"
# What openai-node sends from a browser (dangerouslyAllowBrowser), besides content-type and authorization.
OPENAI_JS_HEADERS = [
    "x-stainless-lang", "x-stainless-package-version", "x-stainless-os", "x-stainless-arch", "x-stainless-runtime",
    "x-stainless-runtime-version", "x-stainless-retry-count", "x-stainless-timeout", "x-stainless-helper-method",
    "openai-organization", "openai-project", "openai-beta",
]  # fmt: skip


@pytest.fixture
def cors(settings):
    settings.CORS_ALLOWED_ORIGINS = [ORIGIN]


def preflight(path: str, headers: list[str], origin: str = ORIGIN):
    return asgi_request(
        application, "OPTIONS", path,
        headers={"origin": origin, "access-control-request-method": "POST",
                 "access-control-request-headers": ",".join(headers)},
    )  # fmt: skip


@pytest.mark.parametrize("path", ["/v1/chat/completions", "/v1/models", "/api/v1/agents/helper/run"])
async def test_the_openai_js_sdks_preflight_is_allowed(cors, path):
    asked = ["authorization", "content-type", *OPENAI_JS_HEADERS, "x-session-id"]
    answer = await preflight(path, asked)

    assert answer.status == 200
    assert answer.headers["access-control-allow-origin"] == ORIGIN
    allowed = {h.strip() for h in answer.headers["access-control-allow-headers"].split(",")}
    assert set(asked) <= allowed
    assert "POST" in answer.headers["access-control-allow-methods"]


async def test_browsers_may_read_the_session_and_request_ids(cors):
    answer = await asgi_request(application, "GET", "/v1/nope", headers={"origin": ORIGIN})
    assert answer.status == 404 and json.loads(answer.body)["error"]["message"] == "Invalid URL (GET /v1/nope)"
    exposed = {h.strip().lower() for h in answer.headers["access-control-expose-headers"].split(",")}
    assert {"x-session-id", "x-request-id"} <= exposed


async def test_another_origin_gets_no_cors_headers(cors):
    answer = await preflight("/v1/chat/completions", ["x-stainless-lang"], origin="https://evil.example")
    assert "access-control-allow-origin" not in answer.headers


async def test_without_configured_origins_there_are_no_cors_headers(settings):
    settings.CORS_ALLOWED_ORIGINS = []
    settings.CORS_ALLOW_ALL_ORIGINS = False
    answer = await preflight("/v1/chat/completions", ["x-stainless-lang"])
    assert "access-control-allow-origin" not in answer.headers
