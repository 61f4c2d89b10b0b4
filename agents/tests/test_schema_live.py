"""A real `manage.py run` child keeps answering while a user's hostile schema is checked: the pattern
`^(a+)+$` against 29 a's and a `!` took Python's backtracking `re` minutes with the GIL held, during
which even `/health` waited."""

from __future__ import annotations

import threading
import time
import urllib.error

import pytest

from agents.tests.test_schema_safety import HOSTILE_SCHEMA, HOSTILE_VALUE
from config.testing.processes import database_url_for_children, http_json, running_server, signed_up

pytestmark = pytest.mark.django_db(transaction=True)


def test_a_hostile_pattern_does_not_freeze_the_server(tmp_path):
    with running_server({"DATABASE_URL": database_url_for_children(tmp_path)}) as base:
        _, token = signed_up(base)
        body = {"name": "Hostile", "slug": "hostile", "system_prompt_text": "Hi.",
                "custom_properties_schema": HOSTILE_SCHEMA}  # fmt: skip
        status, agent = http_json("POST", f"{base}/api/v1/agents", body, token)
        assert status == 201, agent

        answers: list[tuple[int, dict]] = []
        start = {"agent": agent["id"], "custom_properties": {"x": HOSTILE_VALUE}}
        session = threading.Thread(
            target=lambda: answers.append(http_json("POST", f"{base}/api/v1/sessions", start, token, timeout=120)),
            daemon=True,
        )
        session.start()
        # While (or after) the session start is checked, the process answers /health within a second.
        for _ in range(5):
            time.sleep(0.2)
            try:
                status, health = http_json("GET", f"{base}/health", timeout=1)
            except (TimeoutError, urllib.error.URLError):
                pytest.fail("/health did not answer within 1 s while the hostile value was checked")
            assert status == 200, health
        session.join(timeout=30)
        assert not session.is_alive(), "the session start never answered"

    (status, answer), = answers
    assert status == 400, answer
    assert answer["detail"]["fields"] == {"custom_properties": [f'x: "{HOSTILE_VALUE}" does not match "^(a+)+$"']}
