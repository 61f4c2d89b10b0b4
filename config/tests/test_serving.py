"""How the site is served: `manage.py run` (daphne workers sharing one socket) and the ASGI router
that sends plain HTTP to Django's WSGI handler and only streams to its ASGI handler."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from django.conf import settings

from config.asgi import STREAMING_HTTP_PATHS, HttpRouter
from config.testing.processes import children_of, database_url_for_children, free_port


def _get(url: str) -> tuple[int, dict, dict]:
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return response.status, dict(response.headers), json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers), json.loads(error.read())


def _wait_until_up(url: str, process: subprocess.Popen, seconds: float = 30) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        assert process.poll() is None, process.stdout.read()
        try:
            _get(url)
            return
        except (urllib.error.URLError, ConnectionError, OSError):
            time.sleep(0.1)
    raise AssertionError(f"server did not come up at {url}")


@pytest.mark.django_db(transaction=True)
def test_run_serves_with_several_workers_restarts_a_dead_one_and_stops_cleanly(tmp_path):
    port = free_port()
    env = {**os.environ, "DATABASE_URL": database_url_for_children(tmp_path), "PYTHONUNBUFFERED": "1"}
    process = subprocess.Popen(
        [sys.executable, "manage.py", "run", "--port", str(port), "--workers", "2", "--log-level", "warning"],
        cwd=settings.BASE_DIR, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    try:
        _wait_until_up(f"{base}/health", process)
        status, headers, body = _get(f"{base}/health")
        assert status == 200 and body["status"] == "ok"
        assert headers["Server"] == "daphne"
        status, headers, body = _get(f"{base}/api/v1/auth/me")
        assert status == 401 and body["detail"]["code"] == "not_authenticated"
        assert headers["WWW-Authenticate"].startswith("Bearer")

        workers = children_of(process.pid)
        assert len(workers) == 2
        victim = min(workers)
        os.kill(victim, signal.SIGKILL)
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline and len(children_of(process.pid) - {victim}) < 2:
            time.sleep(0.2)
        assert len(children_of(process.pid) - {victim}) == 2
        assert _get(f"{base}/health")[0] == 200
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=20)
    assert process.returncode == 0
    assert not children_of(process.pid)


def test_run_explains_a_port_that_is_taken():
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = subprocess.run(
            [sys.executable, "manage.py", "run", "--port", str(port)],
            cwd=settings.BASE_DIR, capture_output=True, text=True, timeout=60,
        )  # fmt: skip
    assert result.returncode != 0
    assert f"Cannot listen on 127.0.0.1:{port}" in result.stderr


class _Recorder:
    def __init__(self, name: str, calls: list[str]):
        self.name, self.calls = name, calls

    async def __call__(self, scope, receive, send):
        self.calls.append(self.name)


async def test_the_router_sends_only_streaming_paths_to_the_asgi_handler():
    calls: list[str] = []
    router = HttpRouter(wsgi=_Recorder("wsgi", calls), asgi=_Recorder("asgi", calls), streaming_paths=STREAMING_HTTP_PATHS)
    for path in ["/health", "/api/v1/auth/login", *sorted(STREAMING_HTTP_PATHS), "/bots"]:
        await router({"type": "http", "path": path}, None, None)
    assert calls == ["wsgi", "wsgi", *["asgi"] * len(STREAMING_HTTP_PATHS), "wsgi"]


def test_a_serving_process_loads_every_view_and_freezes_its_startup_heap():
    """So full garbage collections under load don't walk the whole loaded framework (a stop of
    100+ ms each, every second: bench/RESULTS.md), and no first request pays for imports."""
    probe = (
        "import gc, sys, config.asgi;"
        "print(gc.get_freeze_count(), 'orgproxy.api' in sys.modules, 'agents.api' in sys.modules)"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe],
        cwd=settings.BASE_DIR,
        env={**os.environ, "SECRET_KEY": "test-" + "k" * 50},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    frozen, orgproxy_loaded, agents_loaded = result.stdout.split()
    assert int(frozen) > 100_000
    assert orgproxy_loaded == agents_loaded == "True"


def _allowed_cpus(pid: int) -> set[frozenset[int]]:
    """The CPU set of each thread of a process."""
    sets = set()
    for task in Path(f"/proc/{pid}/task").iterdir():
        sets.add(frozenset(os.sched_getaffinity(int(task.name))))
    return sets


@pytest.mark.django_db(transaction=True)
def test_run_with_cpu_affinity_pins_every_thread_of_each_worker_to_its_own_cpu(tmp_path):
    port = free_port()
    env = {**os.environ, "DATABASE_URL": database_url_for_children(tmp_path), "PYTHONUNBUFFERED": "1"}
    process = subprocess.Popen(
        [sys.executable, "manage.py", "run", "--port", str(port), "--workers", "2", "--cpu-affinity",
         "--log-level", "warning"],
        cwd=settings.BASE_DIR, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    usable = sorted(os.sched_getaffinity(0))
    try:
        _wait_until_up(f"http://127.0.0.1:{port}/health", process)
        for _ in range(20):  # both workers start their request threads
            assert _get(f"http://127.0.0.1:{port}/health")[0] == 200
        workers = sorted(children_of(process.pid))
        assert len(workers) == 2
        pinned = [_allowed_cpus(pid) for pid in workers]
        for thread_sets in pinned:
            assert len(thread_sets) == 1  # every thread of the worker has the same set...
            (cpus,) = thread_sets
            assert len(cpus) == 1 and cpus <= set(usable)  # ...of one usable CPU
        assert {next(iter(next(iter(s)))) for s in pinned} == set(usable[:2])
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=20)
    assert process.returncode == 0
