"""Multipart bodies with more parts than Django takes (issue 33, item 8), sent to the workspace upload
endpoint of a real `manage.py run`: more than DATA_UPLOAD_MAX_NUMBER_FIELDS fields, or more than
DATA_UPLOAD_MAX_NUMBER_FILES files, are a 400 in the API's error shape saying which limit, not a 500."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import urllib.error
import urllib.request
import uuid

import pytest
from django.conf import settings
from django.core.management import call_command
from django.db import connection

from config.testing.processes import database_url_for_children, http_json, running_server, signed_up

# reset_sequences: the module's server shares the test database on PostgreSQL (see test_openai_api_live).
pytestmark = pytest.mark.django_db(transaction=True, reset_sequences=True)


@pytest.fixture(scope="module")
def child_database(tmp_path_factory, django_db_setup, django_db_blocker) -> str:
    with django_db_blocker.unblock():
        if connection.vendor == "postgresql":
            call_command("flush", interactive=False, reset_sequences=True, verbosity=0)
        return database_url_for_children(tmp_path_factory.mktemp("multipart"))


@pytest.fixture(scope="module")
def server(child_database):
    with running_server({"DATABASE_URL": child_database}) as base:
        yield base


@pytest.fixture
def upload_url(server, child_database) -> tuple[str, str]:
    """A session of the user's with an organization agent that has workspace tools (staff make
    those: in a shell here), and the user's token: (the session's upload URL, token)."""
    _, token = signed_up(server)
    slug = f"files-{uuid.uuid4().hex[:8]}"
    make_agent = (
        "from agents import services; from agents.models import AIAgent; "
        f"print(services.agent_create(owner=None, name='Files', slug={slug!r}, system_prompt_text='Files.', "
        "workspace_tools=AIAgent.WorkspaceTools.FILES).pk)"
    )
    made = subprocess.run(
        [sys.executable, "manage.py", "shell", "-c", make_agent], cwd=settings.BASE_DIR,
        env={**os.environ, "DATABASE_URL": child_database}, capture_output=True, text=True, check=True, timeout=120,
    )  # fmt: skip
    agent_id = int(made.stdout.split()[-1])
    status, session = http_json("POST", f"{server}/api/v1/sessions", {"agent": agent_id, "title": "Files"}, token)
    assert status == 201, session
    return f"{server}/api/v1/sessions/{session['id']}/files", token


def multipart(parts: list[tuple[str, str | None]]) -> bytes:
    """A multipart body of (name, filename or None) parts, each holding one byte."""
    chunks = []
    for name, filename in parts:
        disposition = f'form-data; name="{name}"' + (f'; filename="{filename}"' if filename else "")
        chunks.append(f"--B\r\nContent-Disposition: {disposition}\r\n\r\nx\r\n")
    return ("".join(chunks) + "--B--\r\n").encode()


def post(url: str, token: str, body: bytes) -> tuple[int, dict]:
    request = urllib.request.Request(url, data=body, method="POST")
    request.add_header("Content-Type", "multipart/form-data; boundary=B")
    request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def test_more_than_1000_fields_are_a_400_naming_the_limit(upload_url):
    url, token = upload_url
    status, body = post(url, token, multipart([("file", "a.txt")] + [(f"field{n}", None) for n in range(1001)]))

    assert status == 400, body
    assert body["detail"]["code"] == "invalid"
    (message,) = body["detail"]["fields"]["non_field_errors"]
    assert "more than 1000 fields" in message and "DATA_UPLOAD_MAX_NUMBER_FIELDS" in message


def test_150_file_parts_are_a_400_naming_the_limit(upload_url):
    url, token = upload_url
    status, body = post(url, token, multipart([("file", f"f{n}.txt") for n in range(150)]))

    assert status == 400, body
    assert body["detail"]["code"] == "invalid"
    (message,) = body["detail"]["fields"]["non_field_errors"]
    assert "more than 100 files" in message and "DATA_UPLOAD_MAX_NUMBER_FILES" in message
