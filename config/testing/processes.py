"""Real server processes for tests: `manage.py run` children sharing the test's database.

Tests that need a service the machine may not have (Redis, Chromium) call `require(...)`: on a
developer's machine without it the test is skipped with a reason; in CI (`CI` set) it fails instead,
so nothing is silently skipped there.
"""

from __future__ import annotations

import atexit
import os
import resource
import shutil
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import uuid
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import pytest
from django.conf import settings
from django.db import connection

from config.testing.http import http_json  # noqa: F401 - the tests' client for server processes

REDIS_TEST_URL = os.environ.get("REDIS_URL") or "redis://127.0.0.1:6379/15"


def require(available: bool, what: str) -> None:
    if available:
        return
    if os.environ.get("CI"):
        pytest.fail(f"{what} is required in CI but is not available")
    pytest.skip(f"{what} is not available on this machine")


def redis_is_reachable(url: str = REDIS_TEST_URL) -> bool:
    import redis

    try:
        return bool(redis.Redis.from_url(url, socket_connect_timeout=1).ping())
    except redis.RedisError:
        return False


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def database_url_for_children(tmp_path: Path) -> str:
    """A database URL that child processes can share with this test.

    On PostgreSQL: the test database itself (use `django_db(transaction=True)` so rows are visible).
    On SQLite the test database lives in memory, so children get a migrated file of their own."""
    db = connection.settings_dict
    if connection.vendor == "postgresql":
        return f"postgres://{db['USER']}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"
    target = tmp_path / "children.sqlite3"
    with sqlite3.connect(_migrated_sqlite_template()) as source, sqlite3.connect(target) as copy:
        source.backup(copy)
    return f"sqlite:///{target}"


_sqlite_template: Path | None = None


def _migrated_sqlite_template() -> Path:
    """A SQLite file migrated once per test process (a migrate costs ~6 s of CPU; dozens of tests serve)."""
    global _sqlite_template
    if _sqlite_template is None or not _sqlite_template.exists():
        folder = tempfile.mkdtemp(prefix="conduit-children-db-")
        atexit.register(shutil.rmtree, folder, True)
        template = Path(folder) / "migrated.sqlite3"
        subprocess.run(
            [sys.executable, "manage.py", "migrate", "--noinput", "-v0"],
            cwd=settings.BASE_DIR, env={**os.environ, "DATABASE_URL": f"sqlite:///{template}"}, check=True, timeout=180,
        )  # fmt: skip
        _sqlite_template = template
    return _sqlite_template


_static_root: Path | None = None


def collected_static_root() -> Path:
    """A STATIC_ROOT collected once per test process, for the served tests whose pages load static files."""
    global _static_root
    if _static_root is None or not _static_root.exists():
        folder = tempfile.mkdtemp(prefix="conduit-static-")
        atexit.register(shutil.rmtree, folder, True)
        subprocess.run(
            [sys.executable, "manage.py", "collectstatic", "--noinput", "-v0"],
            cwd=settings.BASE_DIR, env={**os.environ, "STATIC_ROOT": folder}, check=True, timeout=180,
        )  # fmt: skip
        _static_root = Path(folder)
    return _static_root


# Throttles are tested in-process; servers started for other tests must not trip them, whatever
# counters a shared Redis still holds from earlier runs.
_GENEROUS_THROTTLES = {
    "THROTTLE_REGISTER_PER_IP": "10000/min",
    "THROTTLE_LOGIN_PER_IP": "10000/min",
    "THROTTLE_LOGIN_PER_EMAIL": "10000/min",
}


def flush_redis(url: str = REDIS_TEST_URL) -> None:
    """Empty the Redis database the tests were given (theirs alone: see docs/development.md)."""
    import redis

    redis.Redis.from_url(url, socket_connect_timeout=2).flushdb()


_served: dict[str, subprocess.Popen] = {}  # base URL -> the process serving it


@contextmanager
def running_server(
    env: dict[str, str], *, workers: int = 1, application: str | None = None, open_files: int | None = None
) -> Iterator[str]:
    """`manage.py run` on a free port with `env` added; yields its base URL.

    With `application` ("module:attribute"), one daphne process serving that ASGI application
    instead (a test's variant of config.asgi's). With `open_files`, the server starts with that soft
    limit of open files."""
    env = {**_GENEROUS_THROTTLES, **env}
    port = free_port()
    command = [sys.executable, "manage.py", "run", "--port", str(port), "--workers", str(workers), "--log-level", "warning"]
    if application is not None:
        command = [sys.executable, "-m", "config.daphne_server", "-b", "127.0.0.1", "-p", str(port), "-v", "0", application]
    limit_open_files = None
    if open_files is not None:
        hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]

        def limit_open_files() -> None:  # in the child, before it runs the server
            resource.setrlimit(resource.RLIMIT_NOFILE, (open_files, hard))

    process = subprocess.Popen(
        command,
        cwd=settings.BASE_DIR, env={**os.environ, "PYTHONUNBUFFERED": "1", **env},
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, preexec_fn=limit_open_files,
    )  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    _served[base] = process
    try:
        deadline = time.monotonic() + 60  # a loaded 2-core machine starts a server in 10–40 s
        while True:
            if process.poll() is not None:
                raise AssertionError(f"server exited early:\n{process.stdout.read()}")
            try:
                urllib.request.urlopen(f"{base}/health", timeout=2).read()
                break
            except (urllib.error.URLError, ConnectionError, OSError):
                if time.monotonic() > deadline:
                    raise AssertionError(f"server did not come up at {base}") from None
                time.sleep(0.1)
        yield base
    finally:
        _served.pop(base, None)
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def children_of(pid: int) -> set[int]:
    children = set()
    for status in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = status.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if int(fields[1]) == pid:
            children.add(int(status.parent.name))
    return children


def serving_pids(base: str) -> list[int]:
    """The processes that serve requests at `base` (started by `running_server`): the workers of
    `manage.py run`, or the one daphne process of an `application`."""
    process = _served[base]
    return sorted(children_of(process.pid)) or [process.pid]


def signed_up(base: str, *, password: str = "a served-test passphrase") -> tuple[str, str]:
    """Register a new user on the server at `base` and log in: (email, access token)."""
    email = f"served-{uuid.uuid4().hex[:8]}@example.com"
    body = {"name": "Served", "email": email, "password": password}
    status, _ = http_json("POST", f"{base}/api/v1/auth/register", body)
    assert status == 201
    status, pair = http_json("POST", f"{base}/api/v1/auth/login", {"email": email, "password": password})
    assert status == 200
    return email, pair["access_token"]
