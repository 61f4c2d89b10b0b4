"""Concurrent turns refresh a connection's tokens once: two processes (and threads) reaching for an
expiring token at the same moment redeem its refresh token once — the second waits on the row's lock,
reads it again and finds it fresh. (Redeeming a rotated refresh token twice makes real authorization
servers revoke the whole grant, as this suite's server does.)"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from datetime import timedelta

import pytest
from django.conf import settings
from django.db import connection as db
from django.utils import timezone

from agents.models import AIAgent
from config.testing.fake_anthropic import Reply, fake_anthropic_server
from connections.models import Connection
from connections.services import connection_refresh
from connections.tests.conftest import connect_oauth

pytestmark = pytest.mark.django_db(transaction=True)


def children_database_url() -> str:
    """The test's own database, for child processes (rows committed here are theirs to see)."""
    conf = db.settings_dict
    if db.vendor == "postgresql":
        password = f":{conf['PASSWORD']}" if conf.get("PASSWORD") else ""
        return f"postgres://{conf['USER']}{password}@{conf['HOST'] or '127.0.0.1'}:{conf['PORT'] or 5432}/{conf['NAME']}"
    return f"sqlite:///{conf['NAME']}"


def expiring(user, integration) -> Connection:
    connect_oauth(user, integration, login="alice")
    row = Connection.objects.get(user=user, integration=integration)
    Connection.objects.filter(pk=row.pk).update(expires_at=timezone.now() + timedelta(seconds=5))
    return row


def test_two_processes_refreshing_at_once_redeem_the_refresh_token_once(user, oauth_integration, auth_server):
    before = expiring(user, oauth_integration)
    auth_server.refresh_delay = 0.5  # both are surely waiting while the first one's request is out
    start_at = time.time() + 3  # both processes are set up by then
    env = {**os.environ, "DATABASE_URL": children_database_url(), "LOG_LEVEL": "WARNING"}
    children = [
        subprocess.Popen([sys.executable, "-m", "connections.tests.refresh_child", str(before.pk), str(start_at)],
                         cwd=settings.BASE_DIR, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for _ in range(2)
    ]  # fmt: skip
    outcomes = []
    for child in children:
        out, err = child.communicate(timeout=60)
        assert child.returncode == 0, err
        outcomes.append(json.loads(out.strip().splitlines()[-1]))

    assert sorted(o["refreshed"] for o in outcomes) == [False, True]
    assert auth_server.redeemed[before.refresh_token] == 1
    after = Connection.objects.get(pk=before.pk)
    assert after.status == "connected" and after.access_token in auth_server.access
    assert after.refresh_token in auth_server.refresh and not auth_server.refresh[after.refresh_token]["used"]


def test_two_cli_turns_at_once_on_two_processes_redeem_once_and_both_reach_the_server(
    user, oauth_integration, auth_server, tmp_path
):
    before = expiring(user, oauth_integration)
    agent = AIAgent.objects.create(name="Ops", slug="ops", system_prompt_text="Help.", is_active=True)
    agent.integrations.add(oauth_integration)
    auth_server.refresh_delay = 2.0  # the second process starts while the first one's refresh is out
    seen_before = len(auth_server.seen)
    with fake_anthropic_server() as fake:
        fake.script(Reply(text=["One."]), Reply(text=["Two."]))
        env = {**os.environ, "DATABASE_URL": children_database_url(), "LOG_LEVEL": "WARNING",
               "ANTHROPIC_BASE_URL": fake.base_url, "ANTHROPIC_API_KEY": "sk-op", "ANTHROPIC_MODEL": "claude-test-1",
               "ANTHROPIC_MAX_RETRIES": "0"}  # fmt: skip
        for n in range(2):
            (tmp_path / f"run{n}").mkdir()
        runs = [
            subprocess.Popen([sys.executable, "manage.py", "run_orchestrator", "--json", "--agent", "ops", "--user",
                              user.email, "-m", "hi", "--workspace-dir", str(tmp_path / f"run{n}")],
                             cwd=settings.BASE_DIR, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            for n in range(2)
        ]  # fmt: skip
        for run in runs:
            out, err = run.communicate(timeout=120)
            assert run.returncode == 0, err
            assert json.loads(out.strip().splitlines()[-1])["type"] == "result"

    after = Connection.objects.get(pk=before.pk)
    assert auth_server.redeemed[before.refresh_token] == 1
    assert after.status == "connected" and after.access_token != before.access_token
    tokens = {token for token, _ in auth_server.seen[seen_before:]}
    assert tokens == {after.access_token}  # both turns' MCP sessions, with the one refreshed token


def test_threads_refreshing_at_once_redeem_the_refresh_token_once(user, oauth_integration, auth_server):
    before = expiring(user, oauth_integration)
    auth_server.refresh_delay = 0.3
    barrier = threading.Barrier(4)
    outcomes = []

    def refresh() -> None:
        barrier.wait()
        try:
            outcomes.append(connection_refresh(connection_id=before.pk))
        finally:
            db.close()

    threads = [threading.Thread(target=refresh) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)

    assert sorted(o.refreshed for o in outcomes) == [False, False, False, True]
    assert auth_server.redeemed[before.refresh_token] == 1
    assert Connection.objects.get(pk=before.pk).access_token in auth_server.access


def test_a_refresh_that_cannot_reach_the_server_keeps_the_connection(user, oauth_integration, auth_server):
    before = expiring(user, oauth_integration)
    before.client.token_endpoint = "http://127.0.0.1:9/as/token"  # nothing listens there
    before.client.save()

    outcome = connection_refresh(connection_id=before.pk)

    after = Connection.objects.get(pk=before.pk)
    assert not outcome.refreshed and after.status == "connected" and after.access_token == before.access_token


def test_users_connecting_at_once_for_the_first_time_register_one_client(
    user, other_user, oauth_integration, auth_server
):
    before = len(auth_server.clients)
    barrier = threading.Barrier(2)
    failures = []

    def connect(person, login) -> None:
        barrier.wait()
        try:
            answer = connect_oauth(person, oauth_integration, login=login)
            assert answer.status_code == 200, answer.content
        except BaseException as exc:  # noqa: BLE001 - reported below
            failures.append(exc)
        finally:
            db.close()

    threads = [threading.Thread(target=connect, args=pair) for pair in ((user, "alice"), (other_user, "bob"))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)

    assert not failures and len(auth_server.clients) == before + 1
    assert Connection.objects.filter(integration=oauth_integration).count() == 2
