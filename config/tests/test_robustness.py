"""Robustness of a real `manage.py run` child: a bounded loopback load with no error, and
requests after the database dropped every connection (as in a PostgreSQL restart) succeed, with
writes whole."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys

import pytest
from asgiref.sync import sync_to_async
from django.conf import settings
from django.db import connection, connections

from accounts.models import User
from config.testing.processes import database_url_for_children, http_json, running_server, signed_up
from orgproxy.tests.fake_claire import FakeClaire

pytestmark = pytest.mark.django_db(transaction=True)


def load(url: str, token: str, *, connections: int, seconds: float) -> subprocess.Popen:
    """bench/loadgen.py in its own process: keep-alive connections for `seconds`, bounded in count."""
    return subprocess.Popen(
        [sys.executable, str(settings.BASE_DIR / "bench" / "loadgen.py"), "--url", url,
         "-H", f"Authorization: Bearer {token}", "-c", str(connections), "-d", str(seconds), "--warmup", "0.3",
         "--max-requests", "20000", "--timeout", "10"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip


def test_a_bounded_load_on_the_hot_paths_answers_every_request_without_error(tmp_path):
    with FakeClaire() as claire:
        env = {"DATABASE_URL": database_url_for_children(tmp_path), "CLAIRE__BASE_URL": claire.base_url,
               "CLAIRE__API_KEY": claire.api_key, "THROTTLE_LOGIN_PER_EMAIL": "100/min"}  # fmt: skip
        with running_server(env) as base:
            _, token = signed_up(base)
            paths = ("/bots", "/api/v1/auth/me", "/session")
            runs = {path: load(f"{base}{path}", token, connections=8, seconds=3) for path in paths}
            results = {}
            for path, process in runs.items():
                out, err = process.communicate(timeout=60)
                assert process.returncode == 0, err
                results[path] = json.loads(out)

    for path, result in results.items():
        assert result["errors"] == 0, f"{path}: {result['error_kinds']}"
        assert result["requests"] >= 50, f"{path}: only {result['requests']} requests answered"
    # From the cache after the first fetches (concurrent first requests may each miss it once).
    bots_fetches = len(claire.calls("GET", "/m2m/organizations/bots"))
    assert bots_fetches <= 16 < results["/bots"]["requests"] + results["/session"]["requests"]


# Only PostgreSQL has server connections to drop; on SQLite this test is not defined (so nothing is
# reported as skipped in CI).
if connection.vendor == "postgresql":

    def test_after_the_database_drops_every_connection_requests_succeed_and_writes_are_whole(tmp_path):
        env = {"DATABASE_URL": database_url_for_children(tmp_path), "WSGI_THREADS": "4"}
        with running_server(env) as base:
            _, token = signed_up(base)
            for _ in range(8):  # every server thread holds a connection now
                assert http_json("GET", f"{base}/api/v1/auth/me", token=token)[0] == 200

            with connection.cursor() as cursor:
                cursor.execute(
                    "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                    "WHERE datname = current_database() AND pid <> pg_backend_pid()"
                )
                (terminated,) = cursor.fetchone()
            # That dropped this process's other connections too: the one of its database thread
            # (database_sync_to_async) must be reopened, or the async tests after this one fail.
            asyncio.run(sync_to_async(connections.close_all)())
            assert terminated >= 1

            statuses = [http_json("GET", f"{base}/api/v1/auth/me", token=token)[0] for _ in range(8)]
            email, _ = signed_up(base)

        assert statuses == [200] * 8
        assert User.objects.filter(email=email).count() == 1
