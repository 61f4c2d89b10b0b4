"""The ends of sessions and turns on real server processes: a worker SIGKILLed mid-answer leaves
a turn that the sweep of the restarted worker closes as `interrupted`; a password change made
through one process closes the user's websocket on another (through Redis)."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import time
from pathlib import Path
from urllib.parse import urlparse

import pytest
import websockets

from assistant.tests.surfaces.test_live_servers import open_socket, receive_until, seed_over_api
from config.testing.fake_anthropic import Reply
from config.testing.processes import (
    REDIS_TEST_URL,
    database_url_for_children,
    flush_redis,
    http_json,
    redis_is_reachable,
    require,
    running_server,
)

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def fake_model():
    from config.testing.fake_anthropic import fake_anthropic_server

    with fake_anthropic_server() as server:
        yield server


def _workers_of_server(base: str) -> set[int]:
    """The daphne workers of the `manage.py run` serving `base` (its children)."""
    port = str(urlparse(base).port)
    supervisors = set()
    for proc in Path("/proc").iterdir():
        if not proc.name.isdecimal():
            continue
        try:
            argv = (proc / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if b"manage.py" in argv and b"run" in argv and port.encode() in argv:
            supervisors.add(proc.name)
    workers = set()
    for proc in Path("/proc").iterdir():
        try:
            status = (proc / "status").read_text() if proc.name.isdecimal() else ""
        except OSError:
            continue
        ppid = next((line.split()[1] for line in status.splitlines() if line.startswith("PPid:")), None)
        if ppid in supervisors:
            workers.add(int(proc.name))
    return workers


async def _open_when_back(base: str, token: str, timeout: float = 20):
    deadline = time.monotonic() + timeout
    while True:
        try:
            return await open_socket(base, token)
        except (OSError, websockets.exceptions.WebSocketException):
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.2)


async def test_a_turn_of_a_killed_worker_is_closed_as_interrupted_and_stop_and_resume_answer_at_once(
    tmp_path, fake_model
):
    env = {"DATABASE_URL": database_url_for_children(tmp_path), "ANTHROPIC_MAX_RETRIES": "0",
           "ASSISTANT_STALE_TURN_AFTER": "2", "ASSISTANT_STALE_SWEEP_INTERVAL": "0.5",
           "OUTBOUND_ALLOWED_HOSTS": "127.0.0.1"}  # fmt: skip
    with running_server(env) as base:
        token, slug = await asyncio.to_thread(seed_over_api, base, fake_model.base_url)
        fake_model.script(Reply(text=["before ", "the ", "kill"], pause_after=1))
        socket = await open_socket(base, token)
        await socket.send(json.dumps({"type": "start", "agent": slug, "message": "go"}))
        seen = await receive_until(socket, "text_delta")
        session_id = seen[0]["session_id"]
        await asyncio.to_thread(fake_model.wait_until_paused)
        # The socket that started the turn sees a delta before it is written (its runner's queue);
        # kill once it is stored, so the replay has something of what was shown to send back.
        deadline = time.monotonic() + 10
        while True:
            status, page = await asyncio.to_thread(
                http_json, "GET", f"{base}/api/v1/sessions/{session_id}/messages", None, token
            )
            if status == 200 and "before" in json.dumps(page["results"][-1:]):
                break
            assert time.monotonic() < deadline, "the first delta was never written"
            await asyncio.sleep(0.05)

        (worker,) = _workers_of_server(base)
        os.kill(worker, signal.SIGKILL)  # the process running the turn dies without a word
        fake_model.release()

        # The supervisor restarts the worker; its sweep (started with it, no request needed)
        # finds the answer not written for ASSISTANT_STALE_TURN_AFTER and closes it.
        deadline = time.monotonic() + 30
        while True:
            status, page = await asyncio.to_thread(
                http_json, "GET", f"{base}/api/v1/sessions/{session_id}/messages", None, token
            )
            answer = page["results"][-1] if status == 200 else None
            if answer and answer["status"] != "streaming":
                break
            assert time.monotonic() < deadline, "the dead worker's turn was never closed"
            await asyncio.sleep(0.3)
        assert answer["status"] == "error"

        again = await _open_when_back(base, token)
        await again.send(json.dumps({"type": "stop", "session_id": session_id}))
        refusal = json.loads(await asyncio.wait_for(again.recv(), 5))
        assert refusal["type"] == "error" and refusal["code"] == "no_turn"
        await again.send(json.dumps({"type": "resume", "session_id": session_id}))
        replay = await receive_until(again, "error", timeout=5)
        resumed = json.loads(await asyncio.wait_for(again.recv(), 5))
        await again.close()
    assert replay[-1]["code"] == "interrupted"
    assert [f["type"] for f in replay][:2] == ["session", "text_delta"]
    assert resumed["type"] == "resumed" and resumed["running"] is False


@pytest.fixture
def two_servers(tmp_path, fake_model):
    require(redis_is_reachable(), "Redis (for the channel layer shared by two processes)")
    flush_redis()
    env = {"DATABASE_URL": database_url_for_children(tmp_path), "REDIS_URL": REDIS_TEST_URL, "ANTHROPIC_MAX_RETRIES": "0",
           "OUTBOUND_ALLOWED_HOSTS": "127.0.0.1"}  # the user's config names the fake model on 127.0.0.1
    with running_server(env) as a, running_server(env) as b:
        yield a, b


async def test_a_password_change_on_one_process_closes_the_users_socket_on_another(two_servers, fake_model):
    server_a, server_b = two_servers
    token, _ = await asyncio.to_thread(seed_over_api, server_a, fake_model.base_url)
    status, me = await asyncio.to_thread(http_json, "GET", f"{server_a}/api/v1/auth/me", None, token)
    assert status == 200
    on_a = await open_socket(server_a, token)
    await on_a.send(json.dumps({"type": "ping"}))
    assert json.loads(await asyncio.wait_for(on_a.recv(), 5)) == {"type": "pong"}

    status, pair = await asyncio.to_thread(
        http_json, "POST", f"{server_b}/api/v1/auth/password",
        {"current_password": "a live passphrase", "new_password": "another live passphrase"}, token,
    )  # fmt: skip
    assert status == 200, pair
    frame = json.loads(await asyncio.wait_for(on_a.recv(), 10))
    assert frame["type"] == "error" and frame["code"] == "session_revoked"
    with pytest.raises(websockets.exceptions.ConnectionClosed) as closed:
        await asyncio.wait_for(on_a.recv(), 10)
    assert closed.value.rcvd.code == 4401
    # the fresh pair works on either process
    status, _ = await asyncio.to_thread(http_json, "GET", f"{server_a}/api/v1/auth/me", None, pair["access_token"])
    assert status == 200
