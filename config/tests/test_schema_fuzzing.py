"""Schemathesis against the live OpenAPI schema: every documented operation, called in process
through Django's WSGI handler with the fake Claire API behind the organization server, answers only
statuses the schema documents (so never an undocumented 5xx), with the documented content type and
body. Each operation is called with a real access token, on detail routes both with a generated id
and with one of the user's own objects (so 200, 409… are checked too, not only 404), and once with
a bad token. Bounded and deterministic: a few derandomized examples per operation."""

from __future__ import annotations

import pytest
import schemathesis
from drf_spectacular.generators import SchemaGenerator
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from schemathesis.checks import content_type_conformance, response_schema_conformance, status_code_conformance

from django.core.signals import request_finished, request_started
from django.db import close_old_connections

from accounts.services import token_pair_issue
from agents import services as agent_services
from config.wsgi import application
from orgproxy.tests.fake_claire import FakeClaire

# Every answer's status, content type and body must be documented (config/openapi.py documents
# the error statuses each operation can answer).
CHECKS = [status_code_conformance, content_type_conformance, response_schema_conformance]
EXAMPLES_PER_OPERATION = 8


def _schema():
    document = SchemaGenerator().get_schema(request=None, public=True)
    schema = schemathesis.openapi.from_dict(document)
    schema.app = application  # calls go through Django's WSGI handler, in process
    return schema


SCHEMA = _schema()
OPERATIONS = {result.ok().label: result.ok() for result in SCHEMA.get_all_operations()}


@pytest.fixture
def claire(settings):
    with FakeClaire() as fake:
        settings.CLAIRE_BASE_URL = fake.base_url
        settings.CLAIRE_API_KEY = fake.api_key
        settings.CLAIRE_CONNECT_TIMEOUT = settings.CLAIRE_READ_TIMEOUT = 2.0
        yield fake


@pytest.fixture
def own_objects(user) -> dict[str, int]:
    """One object of each kind the user owns, by the detail path that reaches it. The agent uses
    the prompt and has a session, so deleting either answers 409."""
    config = agent_services.llm_config_create(owner=user, name="Fuzz config", model="claude-test")
    integration = agent_services.integration_create(owner=user, provider="github", name="fuzz-github")
    prompt = agent_services.prompt_create(owner=user, name="Fuzz prompt", slug="fuzz-prompt", body="Hi {{ name }}.")
    agent = agent_services.agent_create(owner=user, name="Fuzz agent", slug="fuzz-agent", system_prompt=prompt)
    session = agent_services.session_create(owner=user, agent=agent, title="Fuzz session")
    agent_services.message_append(session=session, role="user", content="Hello.")
    return {
        "/api/v1/llm-configs/{id}": config.pk,
        "/api/v1/integrations/{id}": integration.pk,
        "/api/v1/prompts/{id}": prompt.pk,
        "/api/v1/agents/{id}": agent.pk,
        "/api/v1/sessions/{id}": session.pk,
    }


def _own_object_id(path: str, own_objects: dict[str, int]) -> int | None:
    return next((pk for prefix, pk in own_objects.items() if path.startswith(prefix)), None)


def _assert_documented(label, operation, case, response) -> None:
    if response.status_code >= 500:  # the clearest message for the worst case
        assert str(response.status_code) in operation.definition.raw["responses"], (
            f"{label} answered an undocumented {response.status_code}: {response.text[:500]}"
        )
    case.validate_response(response, checks=CHECKS)


@pytest.fixture
def keep_test_connection():
    """Calls go to the WSGI handler directly, whose request signals would close the test's database
    connection (it is inside the test's transaction); Django's own test client unhooks them too."""
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    yield
    request_started.connect(close_old_connections)
    request_finished.connect(close_old_connections)


@pytest.mark.django_db
@pytest.mark.parametrize("label", sorted(OPERATIONS))
def test_the_operation_answers_only_as_documented(label, user, own_objects, claire, settings, keep_test_connection):
    settings.ANTHROPIC_MAX_RETRIES = 0
    headers = {"Authorization": f"Bearer {token_pair_issue(user=user)['access_token']}"}
    operation = OPERATIONS[label]
    own_id = _own_object_id(operation.path, own_objects)

    @given(case=operation.as_strategy())
    @hypothesis_settings(max_examples=EXAMPLES_PER_OPERATION, derandomize=True, deadline=None,
                         suppress_health_check=list(HealthCheck), database=None)  # fmt: skip
    def check(case):
        _assert_documented(label, operation, case, case.call(headers=headers))
        if own_id is not None:
            case.path_parameters["id"] = own_id
            _assert_documented(label, operation, case, case.call(headers=headers))

    check()


@pytest.mark.django_db
@pytest.mark.parametrize("label", sorted(OPERATIONS))
def test_the_operation_answers_a_bad_token_as_documented(label, claire, keep_test_connection):
    operation = OPERATIONS[label]

    @given(case=operation.as_strategy())
    @hypothesis_settings(max_examples=1, derandomize=True, deadline=None,
                         suppress_health_check=list(HealthCheck), database=None)  # fmt: skip
    def check(case):
        response = case.call(headers={"Authorization": "Bearer not-a-token"})
        _assert_documented(label, operation, case, response)

    check()
