"""The OpenAPI schema documents the error statuses each operation can answer (config/openapi.py),
with the one error body, and stays a valid document."""

from __future__ import annotations

import jsonschema
import pytest
from django.core.management import call_command
from rest_framework.test import APIClient

from accounts.api import INVALID_CREDENTIALS

ERROR_BODY = {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}


@pytest.fixture(scope="module")
def document(django_db_blocker) -> dict:
    with django_db_blocker.unblock():
        response = APIClient().get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json")
    assert response.status_code == 200
    return response.json()


def responses(document: dict, method: str, path: str) -> dict:
    return document["paths"][path][method.lower()]["responses"]


def test_the_schema_is_valid_and_generates_without_warnings(tmp_path):
    call_command("spectacular", "--validate", "--fail-on-warn", "--file", str(tmp_path / "schema.yaml"))


def test_it_documents_input_auth_and_csrf_errors_on_a_create(document):
    create = responses(document, "POST", "/api/v1/agents")
    assert set(create) == {"201", "400", "401", "403", "413", "415", "503"}
    for code in ("400", "401", "403", "413", "415", "503"):
        assert create[code]["content"] == ERROR_BODY, code
    assert "CSRF" in create["403"]["description"]


def test_it_documents_404_on_detail_routes_and_on_paginated_lists(document):
    assert set(responses(document, "GET", "/api/v1/agents/{id}")) == {"200", "401", "404", "503"}
    listed = responses(document, "GET", "/api/v1/agents")
    assert set(listed) == {"200", "400", "401", "404", "503"}  # 400: a query parameter refused
    assert "`page`" in listed["404"]["description"]
    render = responses(document, "POST", "/api/v1/prompts/{id}/render")
    assert {"200", "400", "404"} <= set(render)


def test_it_documents_409_only_where_a_delete_can_be_refused(document):
    assert "409" in responses(document, "DELETE", "/api/v1/prompts/{id}")
    assert "409" in responses(document, "DELETE", "/api/v1/agents/{id}")
    assert "409" not in responses(document, "DELETE", "/api/v1/sessions/{id}")


def test_it_documents_429_with_retry_after_on_throttled_views_only(document):
    login = responses(document, "POST", "/api/v1/auth/login")
    assert set(login) == {"200", "400", "401", "413", "415", "429"}
    assert "Retry-After" in login["429"]["headers"]
    assert "429" in responses(document, "POST", "/api/v1/auth/register")
    assert "429" not in responses(document, "POST", "/api/v1/auth/refresh")


def test_public_views_document_no_401_unless_they_answer_one(document):
    assert "401" not in responses(document, "POST", "/api/v1/auth/register")
    assert set(responses(document, "GET", "/health")) == {"200", "503"}
    assert set(responses(document, "GET", "/api/v1/claude-code/health")) == {"200"}
    assert "401" in responses(document, "POST", "/api/v1/auth/refresh")  # a bad refresh token


def test_explicit_documentation_wins_and_gets_the_error_body(document):
    login = responses(document, "POST", "/api/v1/auth/login")
    assert login["401"]["description"] == INVALID_CREDENTIALS
    assert login["401"]["content"] == ERROR_BODY
    bots = responses(document, "GET", "/bots")
    assert set(bots) == {"200", "401", "502", "503", "504"}
    assert bots["502"]["content"] == ERROR_BODY


def test_only_the_shared_error_component_describes_errors(document):
    schemas = document["components"]["schemas"]
    assert "OrgProxyError" not in schemas
    assert set(schemas["Error"]["properties"]) == {"detail"}
    assert set(schemas["ErrorDetail"]["required"]) == {"message", "code", "request_id"}


# The statuses the rules add are real answers, in the documented body.


def _assert_error_body(document: dict, body: dict) -> None:
    jsonschema.validate(body, {"$ref": "#/components/schemas/Error", "components": document["components"]})


@pytest.mark.django_db
def test_a_session_cookie_post_without_csrf_token_is_a_documented_403(document, user):
    client = APIClient(enforce_csrf_checks=True)
    client.force_login(user)
    response = client.post("/api/v1/agents", {"name": "A", "slug": "a"}, format="json")
    assert response.status_code == 403
    _assert_error_body(document, response.json())


@pytest.mark.django_db
def test_a_body_that_is_not_json_is_a_documented_415(document, api_client, user):
    api_client.force_authenticate(user)
    response = api_client.post("/api/v1/agents", "name=A", content_type="application/x-www-form-urlencoded")
    assert response.status_code == 415
    _assert_error_body(document, response.json())


@pytest.mark.django_db
def test_a_page_past_the_last_is_a_documented_404(document, api_client, user):
    api_client.force_authenticate(user)
    response = api_client.get("/api/v1/agents", {"page": 99})
    assert response.status_code == 404
    _assert_error_body(document, response.json())


@pytest.mark.django_db
def test_messages_of_a_list_field_fit_the_documented_error_body(document, api_client, user):
    api_client.force_authenticate(user)
    response = api_client.post(
        "/api/v1/prompts", {"name": "P", "slug": "p", "body": "Hi.", "tags": ["x" * 51]}, format="json"
    )
    assert response.status_code == 400
    body = response.json()
    assert set(body["detail"]["fields"]["tags"]) == {"0"}  # an object by index, not a list
    _assert_error_body(document, body)


def test_it_documents_the_openai_compatible_api_with_its_error_shape(document):
    chat = document["paths"]["/v1/chat/completions"]["post"]
    assert {"200", "400", "401", "404", "429", "502", "504"} <= set(chat["responses"])
    assert chat["responses"]["404"]["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/OpenAIError"}
    assert set(chat["responses"]["200"]["content"]) == {"application/json", "text/event-stream"}
    assert {"apiKey": []} in chat["security"]
    assert "/v1/models" in document["paths"] and "/v1/models/{model}" in document["paths"]
    assert {"/v1/responses", "/v1/responses/{response_id}", "/v1/embeddings"} <= set(document["paths"])
    assert "404" in document["paths"]["/v1/embeddings"]["post"]["responses"]
    assert document["components"]["securitySchemes"]["apiKey"]["bearerFormat"] == "cdk_…"
    assert "/api/v1/auth/api-keys" in document["paths"] and "/api/v1/auth/api-keys/{key_id}" in document["paths"]
