"""Schemathesis against the live OpenAPI schema: every documented operation, called in process
through Django's WSGI handler with a real access token and the fake Claire API behind the
organization server, never answers an undocumented 5xx and always answers what the schema says
(content type, body). Bounded and deterministic: a few derandomized examples per operation."""

from __future__ import annotations

import pytest
import schemathesis
from drf_spectacular.generators import SchemaGenerator
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from schemathesis.checks import content_type_conformance, response_schema_conformance

from django.core.signals import request_finished, request_started
from django.db import close_old_connections

from accounts.services import token_pair_issue
from config.wsgi import application
from orgproxy.tests.fake_claire import FakeClaire

# Every answer's content type and body must match the schema. Undocumented 4xx statuses are not
# failed here (DRF's invalid-page 404, validation 400s and token 401s are not all documented yet:
# see the report of issue 7); a 5xx fails unless the operation documents it (503 "not configured").
CHECKS = [content_type_conformance, response_schema_conformance]
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
def test_the_operation_answers_without_5xx_and_as_documented(label, user, claire, settings, keep_test_connection):
    settings.ANTHROPIC_MAX_RETRIES = 0
    headers = {"Authorization": f"Bearer {token_pair_issue(user=user)['access_token']}"}
    operation = OPERATIONS[label]

    @given(case=operation.as_strategy())
    @hypothesis_settings(max_examples=EXAMPLES_PER_OPERATION, derandomize=True, deadline=None,
                         suppress_health_check=list(HealthCheck), database=None)  # fmt: skip
    def check(case):
        response = case.call(headers=headers)
        if response.status_code >= 500:
            assert str(response.status_code) in operation.definition.raw["responses"], (
                f"{label} answered an undocumented {response.status_code}: {response.text[:500]}"
            )
        case.validate_response(response, checks=CHECKS)

    check()
