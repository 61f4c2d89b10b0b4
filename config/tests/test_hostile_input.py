"""Input a careless or hostile client sends answers 4xx in the one error shape, never a 500: bodies
over DATA_UPLOAD_MAX_MEMORY_SIZE (413), JSON nested past the parser's recursion (400), NUL
characters (PostgreSQL refuses them in text and jsonb; refused on SQLite too), lone surrogates,
numbers that overflow, out-of-range and not-quite-digit integers in the query string (400 naming
the parameter). `/api/v1/…` paths answer the same with a trailing slash. Runs on SQLite and
PostgreSQL like the rest of the suite."""

from __future__ import annotations

import json

import pytest
from django.conf import settings
from django.urls import resolve
from drf_spectacular.generators import SchemaGenerator

from agents import services as agent_services
from config.asgi import STREAMING_HTTP_PATHS, HttpRouter
from config.http.middleware import api_path_without_slash
from config.untrusted import MAX_DB_INT, MAX_JSON_DEPTH

pytestmark = pytest.mark.django_db



def _error(response, status: int) -> dict:
    assert response.status_code == status, response.content[:500]
    detail = response.json()["detail"]
    assert set(detail) >= {"message", "code", "request_id"}
    return detail


def _post(client, path: str, body: str | bytes):
    return client.generic("POST", path, body, content_type="application/json")


def _nested(depth: int, leaf=None):
    value = leaf
    for _ in range(depth):
        value = [value]
    return value


@pytest.fixture
def agent(user):
    return agent_services.agent_create(owner=user, name="Hostile agent", slug="hostile-agent", system_prompt_text="Hi.")


# --- bodies too large ----------------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/api/v1/auth/login", "/api/v1/auth/register", "/api/v1/agents"])
def test_a_body_over_the_upload_limit_is_a_413_naming_the_limit(path, auth_client):
    password = "p" * (settings.DATA_UPLOAD_MAX_MEMORY_SIZE + 1)
    body = json.dumps({"email": "a@example.com", "name": "x", "password": password})

    detail = _error(_post(auth_client, path, body), 413)

    assert detail["code"] == "too_large"
    assert str(settings.DATA_UPLOAD_MAX_MEMORY_SIZE) in detail["message"]


def test_a_body_at_the_upload_limit_is_parsed(api_client):
    padding = settings.DATA_UPLOAD_MAX_MEMORY_SIZE - len(json.dumps({"email": "", "password": "x"}))
    body = json.dumps({"email": " " * padding, "password": "x"})
    assert len(body) == settings.DATA_UPLOAD_MAX_MEMORY_SIZE

    assert _post(api_client, "/api/v1/auth/login", body).status_code == 400  # the email, not the size


# --- nesting ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/api/v1/auth/login", "/api/v1/auth/register", "/api/v1/agents"])
def test_json_nested_100000_deep_is_a_400(path, auth_client):
    detail = _error(_post(auth_client, path, "[" * 100_000 + "]" * 100_000), 400)

    assert detail["code"] == "parse_error"
    assert "deeper" in detail["message"]


def test_json_nested_past_the_limit_but_parseable_is_a_400_naming_the_top_level_field(auth_client, agent):
    body = {"agent": agent.pk, "custom_properties": {"a": _nested(MAX_JSON_DEPTH)}}

    detail = _error(auth_client.post("/api/v1/sessions", body, format="json"), 400)

    assert detail["fields"] == {"custom_properties": [f"Nested deeper than {MAX_JSON_DEPTH} levels."]}


def test_json_nested_just_within_the_limit_is_taken(auth_client):
    # Integration credentials have no depth limit of their own (custom properties and schemas do: 32).
    body = {"provider": "custom", "credentials": {"a": _nested(MAX_JSON_DEPTH - 3, "leaf")}}

    response = auth_client.post("/api/v1/integrations", body, format="json")

    assert response.status_code == 201, response.content[:300]
    assert auth_client.get(f"/api/v1/integrations/{response.json()['id']}").status_code == 200


# --- NUL characters and other strings the databases refuse -------------------------------------------

NUL = "a\x00b"


@pytest.mark.parametrize(
    "path, body, fields",
    [
        (
            "/api/v1/integrations",
            {"provider": "github", "name": "gh", "mcp_server": {"command": "npx", "args": ["x", NUL]}},
            {"mcp_server": {"args": {"1": ["Null characters are not allowed."]}}},
        ),
        (
            "/api/v1/agents",
            {"name": "A", "slug": "a", "custom_properties_schema": {"type": "object", "description": NUL}},
            {"custom_properties_schema": {"description": ["Null characters are not allowed."]}},
        ),
        (
            "/api/v1/agents",
            {"name": "A", "slug": "a", "custom_properties_schema": {"properties": {NUL: {}}}},
            {"custom_properties_schema": {"properties": ["Null characters are not allowed in a key."]}},
        ),
        (
            "/api/v1/prompts",
            {"name": "P", "slug": "p", "body": NUL},
            {"body": ["Null characters are not allowed."]},
        ),
        (
            "/api/v1/integrations",
            {"provider": "github", "name": "gh", "credentials": {"token": NUL}},
            {"credentials": {"token": ["Null characters are not allowed."]}},
        ),
        ("/api/v1/auth/login", {"email": NUL, "password": "x"}, {"email": ["Null characters are not allowed."]}),
    ],
)
def test_a_nul_character_anywhere_in_a_body_is_a_400_naming_where(path, body, fields, auth_client):
    detail = _error(auth_client.post(path, body, format="json"), 400)

    assert detail["code"] == "invalid"
    assert detail["fields"] == fields


def test_a_nul_character_in_custom_properties_is_a_400(auth_client, agent):
    body = {"agent": agent.pk, "custom_properties": {"tags": ["ok", NUL]}}

    detail = _error(auth_client.post("/api/v1/sessions", body, format="json"), 400)

    assert detail["fields"] == {"custom_properties": {"tags": {"1": ["Null characters are not allowed."]}}}


def test_a_nul_character_in_a_top_level_key_or_a_bare_string_body_is_a_400(auth_client):
    for body in ({NUL: 1}, NUL):
        detail = _error(auth_client.post("/api/v1/agents", body, format="json"), 400)
        assert "non_field_errors" in detail["fields"]


def test_lone_surrogates_and_overflowing_numbers_are_400s_naming_the_field(auth_client, agent):
    surrogate = _post(auth_client, "/api/v1/sessions", '{"agent": %d, "title": "x\\ud800y"}' % agent.pk)
    assert _error(surrogate, 400)["fields"] == {"title": ["Not valid Unicode (a lone surrogate, e.g. \\ud800)."]}

    overflow = _post(auth_client, "/api/v1/sessions", '{"agent": %d, "custom_properties": {"n": 1e999}}' % agent.pk)
    assert list(_error(overflow, 400)["fields"]["custom_properties"]) == ["n"]

    for constant in ("NaN", "Infinity", "-Infinity"):
        body = '{"agent": %d, "custom_properties": {"n": %s}}' % (agent.pk, constant)
        refused = _post(auth_client, "/api/v1/sessions", body)
        assert _error(refused, 400)["code"] == "parse_error"


@pytest.mark.parametrize("param", ["search", "agent", "is_active"])
def test_a_nul_character_in_a_query_parameter_is_a_400_naming_it(param, auth_client):
    detail = _error(auth_client.get("/api/v1/sessions", {param: NUL}), 400)

    assert detail["fields"] == {param: ["Null characters are not allowed."]}


@pytest.mark.parametrize("path", ["/api/v1/agents", "/api/v1/prompts", "/api/v1/llm-configs", "/api/v1/integrations"])
def test_every_list_refuses_a_nul_search(path, auth_client):
    assert _error(auth_client.get(f"{path}?search=%00&tag=%00"), 400)["fields"] == {
        "search": ["Null characters are not allowed."]
    }


# --- integers in the query string and the path --------------------------------------------------------


def test_an_agent_id_past_64_bits_is_a_400_naming_agent(auth_client, agent):
    detail = _error(auth_client.get("/api/v1/sessions", {"agent": "99999999999999999999"}), 400)
    assert detail["fields"] == {"agent": [f"Must be at most {MAX_DB_INT}."]}

    assert auth_client.get("/api/v1/sessions", {"agent": str(MAX_DB_INT)}).json()["count"] == 0
    session = agent_services.session_create(owner=agent.owner, agent=agent)
    for value in (str(agent.pk), f"000{agent.pk}", agent.slug):
        listed = auth_client.get("/api/v1/sessions", {"agent": value}).json()["results"]
        assert [s["id"] for s in listed] == [session.pk]
    assert auth_client.get("/api/v1/sessions", {"agent": "²"}).json()["count"] == 0  # not an id: a slug


@pytest.mark.parametrize("value", ["²", "٣", "-1", "1.5", "1e3", " 1", "99999999999999999999", "9" * 5000])
def test_an_after_seq_that_is_not_a_64_bit_non_negative_integer_is_a_400_naming_it(value, auth_client, agent):
    session = agent_services.session_create(owner=agent.owner, agent=agent)

    detail = _error(auth_client.get(f"/api/v1/sessions/{session.pk}/messages", {"after_seq": value}), 400)

    assert list(detail["fields"]) == ["after_seq"]


@pytest.mark.parametrize(
    "query, status",
    [
        ("page=99999999999999999999", 404),
        ("page=²", 404),
        ("page=-1", 404),
        ("page=last", 200),
        ("page_size=99999999999999999999", 200),  # capped at max_page_size
        ("page_size=²", 200),  # ignored: the default page size
        ("page_size=-5", 200),
    ],
)
def test_page_parameters_answer_documented_statuses(query, status, auth_client, agent):
    response = auth_client.get(f"/api/v1/sessions?{query}")

    assert response.status_code == status, response.content[:300]


@pytest.mark.parametrize("pk", ["99999999999999999999", str(MAX_DB_INT + 1), "²", "-1", "1e3", "%00"])
@pytest.mark.parametrize("suffix", ["", "/messages"])
def test_ids_out_of_range_or_not_integers_are_404s(pk, suffix, auth_client):
    assert _error(auth_client.get(f"/api/v1/sessions/{pk}{suffix}"), 404)["code"] == "not_found"


def test_ids_out_of_range_in_a_body_are_400s_naming_the_field(auth_client):
    for value in (10**20, MAX_DB_INT + 1, -1, 1e300):
        detail = _error(auth_client.post("/api/v1/sessions", {"agent": value}, format="json"), 400)
        assert list(detail["fields"]) == ["agent"]


# --- trailing slashes --------------------------------------------------------------------------------


def _documented_paths() -> list[str]:
    document = SchemaGenerator().get_schema(request=None, public=True)
    return sorted(path.replace("{id}", "1").replace("{session_id}", "s1") for path in document["paths"])


def test_every_api_path_routes_the_same_with_a_trailing_slash():
    api_paths = [path for path in _documented_paths() if path.startswith("/api/v1/")]
    assert len(api_paths) >= 20
    for path in api_paths:
        assert api_path_without_slash(path + "/") == path
        assert resolve(api_path_without_slash(path + "/")).func == resolve(path).func, path
    assert api_path_without_slash("/api/v1/") == "/api/v1/"
    assert api_path_without_slash("/bots/") == "/bots/"  # the organization server's paths are the reference's


def test_api_calls_with_a_trailing_slash_answer_like_without(auth_client, api_client, user):
    from conftest import TEST_PASSWORD

    login = api_client.post("/api/v1/auth/login/", {"email": user.email, "password": TEST_PASSWORD}, format="json")
    assert login.status_code == 200, login.content  # no redirect: the body arrives

    created = auth_client.post("/api/v1/prompts/", {"name": "P", "slug": "p", "body": "Hi {{ who }}"}, format="json")
    assert created.status_code == 201
    pk = created.json()["id"]
    assert auth_client.get("/api/v1/prompts/").json() == auth_client.get("/api/v1/prompts").json()
    assert auth_client.patch(f"/api/v1/prompts/{pk}/", {"name": "Q"}, format="json").json()["name"] == "Q"
    rendered = auth_client.post(f"/api/v1/prompts/{pk}/render/", {"variables": {"who": "you"}}, format="json")
    assert rendered.json()["rendered"] == "Hi you"
    assert auth_client.get("/api/v1/auth/me/").json()["email"] == user.email
    assert auth_client.delete(f"/api/v1/prompts/{pk}/").status_code == 204
    assert _error(auth_client.get("/api/v1/no-such-thing/"), 404)["code"] == "not_found"


async def test_the_streaming_path_goes_to_the_asgi_handler_with_a_trailing_slash_too():
    calls = []

    def recorder(name):
        async def app(scope, receive, send):
            calls.append(name)

        return app

    router = HttpRouter(wsgi=recorder("wsgi"), asgi=recorder("asgi"), streaming_paths=STREAMING_HTTP_PATHS)
    for path in sorted(STREAMING_HTTP_PATHS):
        await router({"type": "http", "path": path + "/"}, None, None)
    await router({"type": "http", "path": "/api/v1/agents/"}, None, None)
    assert calls == ["asgi"] * len(STREAMING_HTTP_PATHS) + ["wsgi"]
