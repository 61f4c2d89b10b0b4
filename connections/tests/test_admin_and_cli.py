"""Staff's side: the integration's page lists its connected users (never a token) and staff disconnect
(revoked at the server); key rotation re-encrypts the tokens; `manage.py connect` connects the operator
(a pasted redirect URL, or the site's callback), whose connection the CLI's runs then use."""

from __future__ import annotations

import io
import json
import os
import sys
import threading
import time
from urllib.parse import urlsplit

import pytest
from cryptography.fernet import Fernet
from django.core.management import CommandError, call_command
from django.test import Client

from agents.models import AIAgent, Integration, UserAgentSession
from config.testing.fake_anthropic import Reply, ToolUse, fake_anthropic_server
from connections.models import Connection
from connections.tests.conftest import authorize_in_browser, connect_oauth


@pytest.fixture
def staff_client(make_user) -> Client:
    staff = make_user(email="staff@example.com", name="Staff", is_staff=True, is_superuser=True)
    client = Client()
    client.force_login(staff)
    return client


def test_the_integrations_page_lists_connected_users_never_tokens(staff_client, user, oauth_integration, auth_server):
    connect_oauth(user, oauth_integration, login="alice")
    row = Connection.objects.get(user=user)

    page = staff_client.get(f"/admin/agents/integration/{oauth_integration.pk}/change/").content.decode()

    assert "alice@example.com" in page and "Connected users" in page
    assert row.access_token not in page and row.refresh_token not in page


def test_staff_disconnect_a_user_and_the_tokens_are_revoked(staff_client, user, oauth_integration, auth_server):
    connect_oauth(user, oauth_integration, login="alice")
    row = Connection.objects.get(user=user)

    answer = staff_client.post("/admin/connections/connection/", {"action": "disconnect", "_selected_action": [row.pk]})

    assert answer.status_code == 302 and not Connection.objects.exists()
    assert row.refresh_token in auth_server.revoked


def test_key_rotation_re_encrypts_the_tokens(user, oauth_integration, auth_server, settings):
    connect_oauth(user, oauth_integration, login="alice")
    before = Connection.objects.get(user=user)
    new_key = Fernet.generate_key().decode()
    settings.FIELD_ENCRYPTION_KEYS = [new_key, *settings.FIELD_ENCRYPTION_KEYS]
    out = io.StringIO()

    call_command("rotate_encryption_keys", stdout=out)
    settings.FIELD_ENCRYPTION_KEYS = [new_key]  # the old key gone: the tokens still read

    after = Connection.objects.get(pk=before.pk)
    assert "connections.Connection: re-encrypted 1" in out.getvalue()
    assert (after.access_token, after.refresh_token) == (before.access_token, before.refresh_token)


@pytest.mark.django_db(transaction=True)
def test_manage_connect_takes_a_pasted_redirect_url(user, oauth_integration, auth_server, monkeypatch):
    read_end, write_end = os.pipe()
    monkeypatch.setattr(sys, "stdin", os.fdopen(read_end))
    out, failures = io.StringIO(), []

    def command() -> None:
        try:
            call_command("connect", "notes", "--user", user.email, "--base-url", "http://conduit.test", stdout=out)
        except BaseException as exc:  # noqa: BLE001 - reported by the test
            failures.append(exc)

    thread = threading.Thread(target=command)
    thread.start()
    url = _printed_url(out)
    callback = authorize_in_browser(url, login="operator-alice")
    os.write(write_end, f"http://conduit.test{callback}\n".encode())
    thread.join(timeout=30)

    assert not failures and "Connected alice@example.com to notes" in out.getvalue()
    row = Connection.objects.get(user=user, integration=oauth_integration)
    assert auth_server.access[row.access_token]["login"] == "operator-alice"


@pytest.mark.django_db(transaction=True)
def test_manage_connect_waits_for_the_sites_callback(user, oauth_integration, auth_server, monkeypatch):
    read_end, _write_end = os.pipe()
    monkeypatch.setattr(sys, "stdin", os.fdopen(read_end))
    out = io.StringIO()
    thread = threading.Thread(target=call_command, args=("connect", str(oauth_integration.pk)),
                              kwargs={"user": user.email, "base_url": "http://testserver", "stdout": out})  # fmt: skip
    thread.start()
    callback = authorize_in_browser(_printed_url(out), login="alice")

    assert Client().get(callback).status_code == 200
    thread.join(timeout=30)
    assert not thread.is_alive() and "Connected alice@example.com" in out.getvalue()


def test_manage_connect_refuses_what_it_cannot_connect(user, db):
    with pytest.raises(CommandError, match="No single active organization integration"):
        call_command("connect", "nothing-such", "--user", user.email)


@pytest.mark.django_db(transaction=True)
def test_the_cli_runs_with_the_operators_connection_or_says_how_to_make_one(user, auth_server, settings, tmp_path):
    settings.ANTHROPIC_MAX_RETRIES, settings.ANTHROPIC_API_KEY, settings.ANTHROPIC_MODEL = 0, "sk-op", "claude-test-1"
    integration = Integration.objects.create(name="notes", provider="custom", auth="oauth",
                                             mcp_server={"type": "http", "url": f"{auth_server.base}/mcp"})  # fmt: skip
    agent = AIAgent.objects.create(name="Ops", slug="ops", system_prompt_text="Help.", is_active=True)
    agent.integrations.add(integration)
    args = ("--json", "--agent", "ops", "--user", user.email, "-m", "who am I?", "--workspace-dir", str(tmp_path))
    with fake_anthropic_server() as fake:
        settings.ANTHROPIC_BASE_URL = fake.base_url
        with pytest.raises(CommandError, match=f"manage.py connect {integration.pk}"):
            call_command("run_orchestrator", *args, stdout=io.StringIO())
        assert fake.requests == []

        connect_oauth(user, integration, login="alice")
        fake.script(Reply(tool_uses=[ToolUse("notes__whoami", {})], stop_reason="tool_use"), Reply(text=["Done."]))
        out = io.StringIO()
        call_command("run_orchestrator", *args, stdout=out)

    results = [json.loads(line) for line in out.getvalue().splitlines() if '"tool_result"' in line]
    assert results and "alice" in json.dumps(results)
    assert UserAgentSession.objects.filter(owner=user, agent=agent).exists()


def _printed_url(out: io.StringIO) -> str:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        for line in out.getvalue().splitlines():
            if line.startswith("http") and "code_challenge" in line:
                assert urlsplit(line).path.endswith("/as/authorize")
                return line
        time.sleep(0.05)
    raise AssertionError(f"no authorize URL printed: {out.getvalue()!r}")
