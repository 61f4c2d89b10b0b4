"""A property-based pass over every operation of the OpenAPI schema with what a careless or hostile
client sends (config/testing/hostile.py): bodies too large, nested past the parser's recursion, with
NUL characters, lone surrogates, overflowing numbers and wrongly typed fields (over an otherwise valid
body, so validation past the parser runs too); query and path parameters with NUL characters,
not-quite digits and ids past 64 bits. Every answer is a documented status below 500, in the error
shape. Bounded and deterministic (derandomized, a few examples per operation), with and without a
trailing slash on the path."""

from __future__ import annotations

import json
from urllib.parse import quote

import pytest
from django.core.cache import cache
from django.test import Client
from drf_spectacular.generators import SchemaGenerator
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from accounts.services import token_pair_issue
from agents import services as agent_services
from agents.models import AIAgent, LLMProviderConfig
from config.testing.fake_anthropic import fake_anthropic_server
from config.testing.hostile import RAW_VALUES, param_values, raw_bodies, raw_object, raw_values
from orgproxy.tests.fake_claire import FakeClaire

EXAMPLES_PER_OPERATION = 6
EXAMPLES_PER_OPERATION_WITH_A_BODY = 16

DOCUMENT = SchemaGenerator().get_schema(request=None, public=True)
OPERATIONS = {
    f"{method.upper()} {path}": (method.upper(), path, operation)
    for path, methods in DOCUMENT["paths"].items()
    for method, operation in methods.items()
}


def _body_properties(operation: dict) -> list[str]:
    ref = operation.get("requestBody", {}).get("content", {}).get("application/json", {}).get("schema", {}).get("$ref")
    if not ref:
        return []
    return sorted(DOCUMENT["components"]["schemas"][ref.rsplit("/", 1)[1]].get("properties", {}))


def _valid_bodies(own: dict) -> dict[str, dict]:
    """A valid body per path (the hostile values replace some of its fields)."""
    return {
        "/api/v1/agents": {"name": "Fuzz", "slug": "fuzz-agent-2", "system_prompt_text": "Hi."},
        "/api/v1/integrations": {"provider": "github", "name": "gh-2", "mcp_server": {"command": "npx", "args": []}},
        "/api/v1/llm-configs": {"name": "Fuzz 2", "model": "claude-x"},
        "/api/v1/prompts": {"name": "P", "slug": "fuzz-prompt-2", "body": "Hi {{ who }}"},
        "/api/v1/prompts/{id}/render": {"variables": {"who": "you"}},
        "/api/v1/sessions": {"agent": own["agent"], "title": "t", "custom_properties": {"n": 1}},
        "/api/v1/auth/login": {"email": own["email"], "password": "not the password"},
        "/api/v1/auth/register": {"name": "N", "email": "fuzz-new@example.com", "password": "a long passphrase 42"},
        "/api/v1/auth/refresh": {"refresh_token": own["refresh"]},
        "/api/v1/auth/logout": {"refresh_token": own["refresh"]},
        "/api/v1/claude-code/code-assistance": {"prompt": "Hi"},
        # An unknown model: every field is validated, then a 404 (no turn to wait for in process).
        "/v1/chat/completions": {"model": "fuzz-no-such-agent", "messages": [{"role": "user", "content": "Hi"}]},
    }


@pytest.fixture(scope="module")
def fake_servers():
    with FakeClaire() as claire, fake_anthropic_server() as model:
        yield claire, model


@pytest.fixture
def upstreams(fake_servers, settings):
    """The organization server on the fake Claire API, and the agent behind code assistance on the
    fake model, so that their operations answer 200 (streams are not read: their turns don't matter)."""
    claire, model = fake_servers
    settings.CLAIRE_BASE_URL = claire.base_url
    settings.CLAIRE_API_KEY = claire.api_key
    settings.CLAIRE_CONNECT_TIMEOUT = settings.CLAIRE_READ_TIMEOUT = 2.0
    settings.ANTHROPIC_MAX_RETRIES = 0
    config = LLMProviderConfig.objects.create(name="Fake", model="claude-x", base_url=model.base_url, api_key="sk-fake")
    AIAgent.objects.create(name="Code", slug=settings.CODE_ASSISTANCE_AGENT, system_prompt_text="Hi", llm_config=config)


@pytest.fixture
def own(user) -> dict:
    prompt = agent_services.prompt_create(owner=user, name="Fuzz prompt", slug="fuzz-prompt", body="Hi {{ who }}.")
    schema = {"type": "object", "properties": {"n": {"type": "integer"}, "tags": {"type": "array"}}}
    agent = agent_services.agent_create(
        owner=user, name="Fuzz agent", slug="fuzz-agent", system_prompt=prompt, custom_properties_schema=schema
    )
    session = agent_services.session_create(owner=user, agent=agent, title="Fuzz session")
    agent_services.message_append(session=session, role="user", content="Hello.")
    pair = token_pair_issue(user=user)
    return {
        "ids": {
            "/api/v1/llm-configs/": agent_services.llm_config_create(owner=user, name="Fuzz config").pk,
            "/api/v1/integrations/": agent_services.integration_create(owner=user, provider="github", name="fuzz").pk,
            "/api/v1/prompts/": prompt.pk,
            "/api/v1/agents/": agent.pk,
            "/api/v1/sessions/": session.pk,
        },
        "agent": agent.pk,
        "email": user.email,
        "access": pair["access_token"],
        "refresh": pair["refresh_token"],
    }


def _encode(value: str) -> str:
    return quote(value.encode("utf-8", "surrogatepass"), safe="")


def _request_strategy(path: str, operation: dict, own: dict):
    parameters = operation.get("parameters", [])
    query = [p["name"] for p in parameters if p["in"] == "query"]
    in_path = [p["name"] for p in parameters if p["in"] == "path"]
    own_id = next((str(pk) for prefix, pk in own["ids"].items() if path.startswith(prefix)), "1")
    valid = _valid_bodies(own).get(path, {})
    fields = sorted(set(valid) | set(_body_properties(operation)))

    # Mostly the user's own object, so that the body is read and validated.
    ids = st.one_of(st.just(own_id), st.just(own_id), st.just(own_id), param_values)
    path_values = st.fixed_dictionaries({name: ids for name in in_path})
    query_values = st.dictionaries(st.sampled_from(query), param_values, max_size=len(query)) if query else st.just({})
    if fields:
        overrides = st.dictionaries(st.sampled_from(fields), raw_values, min_size=1, max_size=2)
        bodies = st.one_of(
            overrides.map(lambda raw: raw_object({**{k: json.dumps(v) for k, v in valid.items()}, **raw})),
            raw_bodies,
        )
    else:
        bodies = st.just(None)
    return st.tuples(path_values, query_values, bodies, st.booleans())


def _assert_answered(label: str, operation: dict, response) -> None:
    status = response.status_code
    assert status < 500, f"{label} answered {status}: {response.content[:500]!r}"
    assert str(status) in operation["responses"], f"{label} answered an undocumented {status}: {response.content[:300]}"
    if status >= 400 and "OpenAIError" in json.dumps(operation["responses"][str(status)]):
        error = json.loads(response.content)["error"]  # the OpenAI-compatible API's shape
        assert isinstance(error["message"], str) and isinstance(error["type"], str), error
    elif status >= 400:
        detail = json.loads(response.content)["detail"]
        assert isinstance(detail["message"], str) and isinstance(detail["code"], str), detail


# Operations whose 200 starts a turn: its writes come from other threads (config/threads.py), which on
# SQLite would wait out the lock timeouts (40 s an example) for the test's own transaction to end.
TURN_STARTING = {"POST /api/v1/claude-code/code-assistance"}


@pytest.mark.parametrize(
    "label",
    [pytest.param(label, marks=pytest.mark.django_db(transaction=label in TURN_STARTING)) for label in sorted(OPERATIONS)],
)
def test_hostile_input_gets_a_documented_answer_below_500(label, own, upstreams):
    method, path, operation = OPERATIONS[label]
    client = Client(HTTP_AUTHORIZATION=f"Bearer {own['access']}")

    examples = EXAMPLES_PER_OPERATION_WITH_A_BODY if "requestBody" in operation else EXAMPLES_PER_OPERATION

    @given(request=_request_strategy(path, operation, own))
    @hypothesis_settings(max_examples=examples, derandomize=True, deadline=None,
                         suppress_health_check=list(HealthCheck), database=None)  # fmt: skip
    def check(request):
        path_values, query_values, body, slash = request
        cache.clear()  # no throttle: every example reaches the view
        url = path
        for name, value in path_values.items():
            url = url.replace("{" + name + "}", _encode(value) or "x")
        url += "/" if slash and url.startswith("/api/v1/") else ""
        if query_values:
            url += "?" + "&".join(f"{_encode(name)}={_encode(value)}" for name, value in query_values.items())
        kwargs = {"content_type": "application/json"} if body is not None else {}
        response = client.generic(method, url, body.encode("utf-8", "surrogatepass") if body else b"", **kwargs)
        _assert_answered(label, operation, response)

    check()


def _json_fields() -> list[tuple[str, str]]:
    """(create path, field) for each body field that takes any JSON (a JSONField: no `type`, an
    object or a list), where a hostile value gets furthest: past the parser, into validators."""
    found = []
    for label, (method, path, operation) in sorted(OPERATIONS.items()):
        if method != "POST" or not _body_properties(operation):
            continue
        ref = operation["requestBody"]["content"]["application/json"]["schema"]["$ref"]
        for name, schema in DOCUMENT["components"]["schemas"][ref.rsplit("/", 1)[1]]["properties"].items():
            if schema.get("readOnly") or set(schema) & {"$ref", "allOf", "oneOf", "enum"}:
                continue
            if schema.get("type") not in (None, "object", "array"):
                continue
            found.append((path, name))
    return found


@pytest.mark.django_db
@pytest.mark.parametrize("path, field", _json_fields())
def test_every_hostile_value_in_every_json_field_gets_an_answer_below_500(path, field, own, upstreams):
    client = Client(HTTP_AUTHORIZATION=f"Bearer {own['access']}")
    operation = OPERATIONS[f"POST {path}"][2]
    own_id = next((pk for prefix, pk in own["ids"].items() if path.startswith(prefix)), None)
    path_with_id = path.replace("{id}", str(own_id))
    valid = {k: json.dumps(v) for k, v in _valid_bodies(own).get(path, {}).items()}
    for raw in RAW_VALUES:
        cache.clear()
        body = raw_object({**valid, field: raw})
        response = client.generic("POST", path_with_id, body, content_type="application/json")
        _assert_answered(f"POST {path} with {field}={raw[:40]}", operation, response)
