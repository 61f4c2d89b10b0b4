"""The assistant on real daphne processes, with a real websocket client and a real HTTP client:
a turn survives its socket and continues on another process (through Redis); stop works from any
process; an SSE client that disconnects stops the model."""

from __future__ import annotations

import asyncio
import http.client
import json
import os
import subprocess
import sys
import uuid
from urllib.parse import urlparse

import pytest
import websockets
from django.conf import settings

from assistant.tests.conftest import texts
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


def seed_over_api(base: str, fake_url: str, slug: str | None = None) -> tuple[str, str]:
    """A user, an LLM config pointing at the fake model and an agent, all made through the API (the
    server must allow 127.0.0.1 in OUTBOUND_ALLOWED_HOSTS). Returns the user's access token and the agent's slug."""
    email = f"live-{uuid.uuid4().hex[:8]}@example.com"
    status, registered = http_json("POST", f"{base}/api/v1/auth/register", {"name": "Live", "email": email, "password": "a live passphrase"})
    assert status == 201, registered
    status, pair = http_json("POST", f"{base}/api/v1/auth/login", {"email": email, "password": "a live passphrase"})
    assert status == 200
    token = pair["access_token"]
    status, config = http_json(
        "POST", f"{base}/api/v1/llm-configs",
        {"name": "Fake", "provider": "anthropic", "model": "claude-test-1", "base_url": fake_url, "api_key": "sk-live"}, token,
    )  # fmt: skip
    assert status == 201, config
    slug = slug or f"live-{uuid.uuid4().hex[:6]}"
    status, agent = http_json(
        "POST", f"{base}/api/v1/agents",
        {"name": "Live agent", "slug": slug, "system_prompt_text": "Be brief.", "llm_config": config["id"]}, token,
    )  # fmt: skip
    assert status == 201, agent
    return token, slug


def ws_url(base: str) -> str:
    return base.replace("http://", "ws://") + "/ws/assistant/"


async def open_socket(base: str, token: str):
    # The Origin of a page served by that server: the same scheme, host and port (config/http/websocket_origin.py).
    return await websockets.connect(ws_url(base), subprotocols=["jwt", token], origin=base, open_timeout=10)


async def receive_until(socket, *types: str, timeout: float = 15) -> list[dict]:
    frames = []
    while True:
        frame = json.loads(await asyncio.wait_for(socket.recv(), timeout))
        frames.append(frame)
        if frame["type"] in types and frame.get("seq") is not None:
            return frames


@pytest.fixture
def fake_model():
    from config.testing.fake_anthropic import fake_anthropic_server

    with fake_anthropic_server() as server:
        yield server


@pytest.fixture
def two_servers(tmp_path, fake_model):
    require(redis_is_reachable(), "Redis (for the channel layer shared by two processes)")
    flush_redis()
    env = {"DATABASE_URL": database_url_for_children(tmp_path), "REDIS_URL": REDIS_TEST_URL, "ANTHROPIC_MAX_RETRIES": "0",
           "OUTBOUND_ALLOWED_HOSTS": "127.0.0.1"}  # the user's config names the fake model on 127.0.0.1
    with running_server(env) as a, running_server(env) as b:
        yield a, b


async def test_a_client_on_process_b_resumes_a_turn_running_on_process_a(two_servers, fake_model):
    server_a, server_b = two_servers
    token, slug = await asyncio.to_thread(seed_over_api, server_a, fake_model.base_url)
    chunks = [f"chunk{n} " for n in range(10)]
    fake_model.script(Reply(text=chunks, pause_after=4))

    on_a = await open_socket(server_a, token)
    assert on_a.subprotocol == "jwt"
    await on_a.send(json.dumps({"type": "start", "agent": slug, "message": "Tell me ten things"}))
    seen = await receive_until(on_a, "text_delta")
    await asyncio.to_thread(fake_model.wait_until_paused)
    await asyncio.sleep(0.2)
    try:
        while True:
            seen.append(json.loads(await asyncio.wait_for(on_a.recv(), 0.3)))
    except TimeoutError:
        pass
    await on_a.close()  # the reload: the socket is gone, the turn keeps running on A

    on_b = await open_socket(server_b, token)
    session_id, last_seq = seen[0]["session_id"], seen[-1]["seq"]
    await on_b.send(json.dumps({"type": "resume", "session_id": session_id, "after_seq": last_seq}))
    resumed = json.loads(await asyncio.wait_for(on_b.recv(), 10))
    assert resumed == {"type": "resumed", "session_id": session_id, "seq": last_seq, "running": True, "pending_approvals": []}
    fake_model.release()  # A streams the rest; B gets it through Redis
    rest = await receive_until(on_b, "result")
    await on_b.close()

    frames = seen + rest
    seqs = [f["seq"] for f in frames]
    assert seqs == list(range(seqs[0], seqs[0] + len(seqs))), "no gap and no duplicate across processes"
    assert texts(frames) == "".join(chunks)
    assert rest[-1]["status"] == "complete"


async def test_stop_sent_to_process_b_stops_the_turn_running_on_process_a(two_servers, fake_model):
    server_a, server_b = two_servers
    token, slug = await asyncio.to_thread(seed_over_api, server_a, fake_model.base_url)
    fake_model.script(Reply(text=["kept ", "text ", "lost ", "text"], pause_after=2))
    on_a = await open_socket(server_a, token)
    await on_a.send(json.dumps({"type": "start", "agent": slug, "message": "go"}))
    session_id = (await receive_until(on_a, "session"))[0]["session_id"]
    await asyncio.to_thread(fake_model.wait_until_paused)

    on_b = await open_socket(server_b, token)
    await on_b.send(json.dumps({"type": "stop", "session_id": session_id}))
    result = (await receive_until(on_a, "result"))[-1]
    fake_model.release()
    await on_a.close()
    await on_b.close()
    assert result["status"] == "stopped"
    status, page = await asyncio.to_thread(http_json, "GET", f"{server_a}/api/v1/sessions/{session_id}/messages", None, token)
    assert status == 200
    answer = page["results"][-1]
    assert answer["status"] == "stopped" and answer["content"] == [{"type": "text", "text": "kept text "}]


async def test_an_sse_client_that_disconnects_stops_the_model(tmp_path, fake_model):
    # Code assistance runs the organization's agent (seeded by `init`) on the organization's model settings.
    env = {"DATABASE_URL": database_url_for_children(tmp_path), "ANTHROPIC_MAX_RETRIES": "0",
           "ANTHROPIC_API_KEY": "sk-live", "ANTHROPIC_BASE_URL": fake_model.base_url,
           "ANTHROPIC_MODEL": "claude-test-1", "OUTBOUND_ALLOWED_HOSTS": "127.0.0.1"}  # fmt: skip
    await asyncio.to_thread(
        subprocess.run, [sys.executable, "manage.py", "init"], cwd=settings.BASE_DIR, env={**os.environ, **env},
        check=True, capture_output=True, timeout=120,
    )  # fmt: skip
    with running_server(env) as base:
        token, _ = await asyncio.to_thread(seed_over_api, base, fake_model.base_url)
        reply = Reply(text=["first ", "second ", "third"], pause_after=1, input_tokens=46, start_output_tokens=2,
                      cache_read_input_tokens=9, cache_creation_input_tokens=4)  # fmt: skip
        fake_model.script(reply)

        def stream_until_the_first_words_then_hang_up() -> dict:
            host = urlparse(base)
            connection = http.client.HTTPConnection(host.hostname, host.port, timeout=15)
            body = json.dumps({"prompt": "hello", "session_id": "sse-disconnect"})
            connection.request("POST", "/api/v1/claude-code/code-assistance", body,
                               {"Authorization": f"Bearer {token}", "Content-Type": "application/json"})  # fmt: skip
            response = connection.getresponse()
            assert response.status == 200, response.read()
            assert response.getheader("X-Session-ID") == "sse-disconnect"
            while True:  # read until the model's first words, then hang up
                line = response.readline()  # de-chunked: daphne streams with chunked encoding
                if line.startswith(b"data: "):
                    event = json.loads(line.decode()[len("data: "):])
                    if event["type"] == "code_assistance":
                        break
            response.close()
            connection.close()
            return event

        def stored_answer() -> dict:
            status, sessions = http_json("GET", f"{base}/api/v1/sessions", None, token)
            session_id = sessions["results"][0]["id"]
            status, messages = http_json("GET", f"{base}/api/v1/sessions/{session_id}/messages", None, token)
            return messages["results"][-1]

        def stored_answer_status() -> str:
            return stored_answer()["status"]

        first_words = await asyncio.to_thread(stream_until_the_first_words_then_hang_up)
        assert first_words["content"] == "first "
        for _ in range(100):  # daphne notices the hang-up, Django cancels the response, the turn stops
            if await asyncio.to_thread(stored_answer_status) == "stopped":
                break
            await asyncio.sleep(0.1)
        assert await asyncio.to_thread(stored_answer_status) == "stopped"
        answer = await asyncio.to_thread(stored_answer)
        assert {name: answer[name] for name in reply.start_usage()} == reply.start_usage(), "the usage known is kept"
        fake_model.release()
        await asyncio.to_thread(fake_model.requests[0].finished.wait, 10)
        assert fake_model.requests[0].disconnected, "the upstream stream must be closed when the client leaves"
