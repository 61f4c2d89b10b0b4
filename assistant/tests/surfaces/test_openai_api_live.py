"""The OpenAI-compatible API on a real server process (`manage.py run`), with the real `openai` SDK
as the client and a personal API key, the agent's model being the fake Anthropic server: models,
streamed and whole completions with usage, the client's options reaching the model, every error in
OpenAI's shape, keys refused when revoked, expired or of a deactivated user, a key on the websocket,
and a client that hangs up stopping the turn."""

from __future__ import annotations

import asyncio
import http.client
import json
import os
import subprocess
import sys
import time
import uuid
from datetime import datetime, timedelta, timezone
from urllib.parse import urlparse

import openai
import pytest
from django.conf import settings
from django.core.management import call_command
from django.db import connection

from assistant.tests.surfaces.test_live_servers import open_socket, receive_until, seed_over_api
from config.testing.fake_anthropic import HttpError, Reply, fake_anthropic_server
from config.testing.processes import database_url_for_children, http_json, running_server

# reset_sequences: each flush re-creates the content types with the same ids, so the module's server
# (started once, sharing this database on PostgreSQL) keeps valid ids in its ContentType cache
# (the audit log writes one per change).
pytestmark = pytest.mark.django_db(transaction=True, reset_sequences=True)

READ_TIMEOUT = 3  # the server's ANTHROPIC_READ_TIMEOUT: a silent model becomes a 504 quickly


@pytest.fixture(scope="module")
def child_database(tmp_path_factory, django_db_setup, django_db_blocker) -> str:
    with django_db_blocker.unblock():
        if connection.vendor == "postgresql":
            # Start from content types numbered 1…N, as every flush with reset_sequences re-creates them
            # (see pytestmark): the server caches their ids when it starts.
            call_command("flush", interactive=False, reset_sequences=True, verbosity=0)
        return database_url_for_children(tmp_path_factory.mktemp("openai-api"))


@pytest.fixture(scope="module")
def server(child_database):
    env = {
        "DATABASE_URL": child_database, "ANTHROPIC_MAX_RETRIES": "0", "ANTHROPIC_READ_TIMEOUT": str(READ_TIMEOUT),
        "OUTBOUND_ALLOWED_HOSTS": "127.0.0.1",  # the users' configs name the fake model on 127.0.0.1
        "ASSISTANT_MAX_CONCURRENT_TURNS_PER_USER": "1",  # each test has users of its own
        "V1_CHAT_MAX_BODY_BYTES": "2621440",  # a small limit, for a quick test of it
    }  # fmt: skip
    with running_server(env) as base:
        yield base


@pytest.fixture
def fake_model():
    with fake_anthropic_server() as fake:
        yield fake
        fake.release()  # no reply left waiting at the gate


class Account:
    def __init__(self, base: str, fake_url: str) -> None:
        self.base = base
        self.token, self.slug = seed_over_api(base, fake_url)
        status, me = http_json("GET", f"{base}/api/v1/auth/me", None, self.token)
        self.email = me["email"]
        self.key_id, self.key = self.new_key()

    def new_key(self, **body) -> tuple[int, str]:
        status, created = http_json("POST", f"{self.base}/api/v1/auth/api-keys", {"name": "sdk", **body}, self.token)
        assert status == 201, created
        return created["id"], created["key"]

    def client(self, key: str | None = None) -> openai.OpenAI:
        return openai.OpenAI(api_key=key or self.key, base_url=f"{self.base}/v1", max_retries=0, timeout=30)

    def stored_messages(self, session_id: str) -> list[dict]:
        status, page = http_json("GET", f"{self.base}/api/v1/sessions/{session_id}/messages", None, self.key)
        assert status == 200, page
        return page["results"]


@pytest.fixture
def account(server, fake_model) -> Account:
    return Account(server, fake_model.base_url)


def manage_shell(child_database: str, code: str) -> None:
    subprocess.run(
        [sys.executable, "manage.py", "shell", "-c", code], cwd=settings.BASE_DIR,
        env={**os.environ, "DATABASE_URL": child_database}, check=True, capture_output=True, timeout=120,
    )  # fmt: skip


def wait_for_status(account: Account, session_id: str, wanted: str) -> dict:
    deadline = time.monotonic() + 15
    while True:
        answer = account.stored_messages(session_id)[-1]
        if answer["status"] == wanted or time.monotonic() > deadline:
            return answer
        time.sleep(0.1)


# --- models -----------------------------------------------------------------------------------------


def test_it_lists_the_users_agents_as_models_and_not_another_users(server, fake_model, account):
    stranger = Account(server, fake_model.base_url)

    models = account.client().models.list()

    ids = [model.id for model in models.data]
    assert account.slug in ids and stranger.slug not in ids
    mine = next(model for model in models.data if model.id == account.slug)
    assert mine.object == "model" and mine.owned_by == "user" and mine.created > 0
    assert account.client().models.retrieve(account.slug).id == account.slug
    with pytest.raises(openai.NotFoundError) as refused:
        account.client().models.retrieve(stranger.slug)
    assert refused.value.body["code"] == "model_not_found"


# --- completions ------------------------------------------------------------------------------------


def test_a_whole_completion_answers_with_the_agents_text_and_usage(account, fake_model):
    fake_model.script(Reply(text=["Hello", " there."], input_tokens=20, output_tokens=7, cache_read_input_tokens=5))

    raw = account.client().chat.completions.with_raw_response.create(
        model=account.slug, messages=[{"role": "user", "content": "Hi"}]
    )
    completion = raw.parse()

    assert completion.object == "chat.completion" and completion.model == account.slug
    assert completion.id.startswith("chatcmpl-")
    assert completion.choices[0].message.role == "assistant"
    assert completion.choices[0].message.content == "Hello there."
    assert completion.choices[0].finish_reason == "stop"
    assert completion.usage.prompt_tokens == 25 and completion.usage.completion_tokens == 7
    assert completion.usage.total_tokens == 32 and completion.usage.prompt_tokens_details.cached_tokens == 5
    # Stored as a session of the user, with the usage on its answer.
    stored = account.stored_messages(raw.headers["x-session-id"])
    assert [m["role"] for m in stored] == ["user", "assistant"]
    assert stored[-1]["status"] == "complete" and stored[-1]["output_tokens"] == 7


def test_a_streamed_completion_sends_chunks_a_finish_reason_usage_and_done(account, fake_model):
    fake_model.script(Reply(text=["One", " two", " three"], input_tokens=11, output_tokens=3))

    chunks = list(
        account.client().chat.completions.create(
            model=account.slug, messages=[{"role": "user", "content": "Count"}], stream=True,
            stream_options={"include_usage": True},
        )  # fmt: skip
    )

    assert all(chunk.object == "chat.completion.chunk" and chunk.model == account.slug for chunk in chunks)
    assert len({chunk.id for chunk in chunks}) == 1
    assert chunks[0].choices[0].delta.role == "assistant"
    text = "".join(chunk.choices[0].delta.content or "" for chunk in chunks if chunk.choices)
    assert text == "One two three"
    finishes = [chunk.choices[0].finish_reason for chunk in chunks if chunk.choices and chunk.choices[0].finish_reason]
    assert finishes == ["stop"]
    assert chunks[-1].choices == [] and chunks[-1].usage.prompt_tokens == 11 and chunks[-1].usage.completion_tokens == 3
    assert all(chunk.usage is None for chunk in chunks[:-1])


def test_a_stream_without_include_usage_has_no_usage_chunk(account, fake_model):
    chunks = list(
        account.client().chat.completions.create(model=account.slug, messages=[{"role": "user", "content": "Hi"}], stream=True)
    )
    assert all(chunk.choices for chunk in chunks)
    assert "".join(chunk.choices[0].delta.content or "" for chunk in chunks) == "Hello from the fake model."


def test_max_tokens_stop_user_system_and_history_reach_the_model(account, fake_model):
    fake_model.script(Reply(text=["Cut"], stop_reason="max_tokens"))
    history = [
        {"role": "system", "content": "Answer in French."},
        {"role": "user", "content": "What's in notes.txt?"},
        {"role": "assistant", "content": None, "tool_calls": [
            {"id": "call_1", "type": "function", "function": {"name": "read_file", "arguments": '{"path": "notes.txt"}'}},
        ]},
        {"role": "tool", "tool_call_id": "call_1", "content": "milk, eggs"},
        {"role": "assistant", "content": "Milk and eggs."},
        {"role": "user", "content": [{"type": "text", "text": "And now?"}]},
    ]  # fmt: skip

    raw = account.client().chat.completions.with_raw_response.create(
        model=account.slug, messages=history, max_tokens=50, stop=["END", "STOP"], user="end-user-42"
    )
    completion = raw.parse()

    assert completion.choices[0].finish_reason == "length"
    sent = fake_model.requests[-1].body
    assert sent["max_tokens"] == 50  # capped below the config's own maximum
    assert sent["stop_sequences"] == ["END", "STOP"]
    assert sent["system"].startswith("Be brief.") and sent["system"].endswith("Answer in French.")
    assert sent["messages"] == [
        {"role": "user", "content": [{"type": "text", "text": "What's in notes.txt?"}]},
        {"role": "assistant", "content": [{"type": "tool_use", "id": "call_1", "name": "read_file", "input": {"path": "notes.txt"}}]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "call_1", "content": "milk, eggs", "is_error": False}]},
        {"role": "assistant", "content": [{"type": "text", "text": "Milk and eggs."}]},
        {"role": "user", "content": [{"type": "text", "text": "And now?"}]},
    ]  # fmt: skip
    status, session = http_json("GET", f"{account.base}/api/v1/sessions/{raw.headers['x-session-id']}", None, account.key)
    assert status == 200 and session["title"].startswith("[end-user-42] ")


def test_max_completion_tokens_above_the_configs_maximum_keeps_the_configs(account, fake_model):
    account.client().chat.completions.create(
        model=account.slug, messages=[{"role": "user", "content": "Hi"}], max_completion_tokens=10**6
    )
    assert fake_model.requests[-1].body["max_tokens"] < 10**6


# --- one conversation, one session ---------------------------------------------------------------------


def test_a_conversation_carried_on_by_the_sdk_stays_one_session(account, fake_model):
    fake_model.script(Reply(text=["Hello, Alice."]), Reply(text=["Blue."]), Reply(text=["Still blue."]))
    client = account.client()
    messages = [{"role": "user", "content": "Hi, I'm Alice"}]
    sessions = []
    for question in ("Favourite colour?", "Sure?", None):
        raw = client.chat.completions.with_raw_response.create(model=account.slug, messages=messages)
        sessions.append(raw.headers["x-session-id"])
        if question:
            messages += [{"role": "assistant", "content": raw.parse().choices[0].message.content},
                         {"role": "user", "content": question}]  # fmt: skip

    assert len(set(sessions)) == 1
    stored = account.stored_messages(sessions[0])
    assert [m["role"] for m in stored] == ["user", "assistant"] * 3


def test_x_session_id_continues_a_session_and_anothers_is_a_404(account, server, fake_model):
    client = account.client()
    first = client.chat.completions.with_raw_response.create(model=account.slug, messages=[{"role": "user", "content": "Hi"}])
    session_id = first.headers["x-session-id"]

    again = client.chat.completions.with_raw_response.create(
        model=account.slug, messages=[{"role": "user", "content": "Again"}], extra_headers={"X-Session-ID": session_id}
    )
    assert again.headers["x-session-id"] == session_id and len(account.stored_messages(session_id)) == 4

    stranger = Account(server, fake_model.base_url)
    with pytest.raises(openai.NotFoundError) as refused:
        stranger.client().chat.completions.create(
            model=stranger.slug, messages=[{"role": "user", "content": "Hi"}], extra_headers={"X-Session-ID": session_id}
        )
    assert refused.value.body["code"] == "session_not_found"


# --- errors -----------------------------------------------------------------------------------------


def test_a_bad_key_is_a_401_in_openais_shape(account):
    with pytest.raises(openai.AuthenticationError) as refused:
        account.client("cdk_" + "x" * 43).models.list()
    assert refused.value.status_code == 401
    assert refused.value.body["code"] == "invalid_api_key" and refused.value.body["type"] == "invalid_request_error"


def test_no_key_at_all_is_a_401(server):
    status, body = http_json("GET", f"{server}/v1/models")
    assert status == 401 and body["error"]["code"] == "invalid_api_key"


def test_an_access_token_works_too(account):
    assert account.slug in [model.id for model in account.client(account.token).models.list().data]


def test_a_revoked_key_is_refused_at_once(account):
    client = account.client()
    assert client.models.list().data

    status, _ = http_json("DELETE", f"{account.base}/api/v1/auth/api-keys/{account.key_id}", None, account.token)
    assert status == 204

    with pytest.raises(openai.AuthenticationError) as refused:
        client.chat.completions.create(model=account.slug, messages=[{"role": "user", "content": "Hi"}])
    assert "revoked" in refused.value.body["message"]


def test_an_expired_key_is_refused(account):
    soon = datetime.now(timezone.utc) + timedelta(seconds=2)
    _, key = account.new_key(expires_at=soon.isoformat())
    assert account.client(key).models.list().data
    time.sleep(max(0.0, (soon - datetime.now(timezone.utc)).total_seconds()) + 0.2)

    with pytest.raises(openai.AuthenticationError) as refused:
        account.client(key).models.list()
    assert "expired" in refused.value.body["message"]


def test_a_deactivated_users_key_is_refused(account, child_database):
    assert account.client().models.list().data

    manage_shell(child_database, f"from accounts.models import User; u = User.objects.get(email={account.email!r}); u.is_active = False; u.save()")

    with pytest.raises(openai.AuthenticationError):
        account.client().chat.completions.create(model=account.slug, messages=[{"role": "user", "content": "Hi"}])


def test_an_unknown_model_is_a_404_model_not_found(account, server, fake_model):
    stranger = Account(server, fake_model.base_url)
    for model in ("no-such-agent", stranger.slug):  # another user's private agent is unknown to this one
        with pytest.raises(openai.NotFoundError) as refused:
            account.client().chat.completions.create(model=model, messages=[{"role": "user", "content": "Hi"}])
        assert refused.value.body["code"] == "model_not_found" and refused.value.body["param"] == "model"
    assert len(fake_model.requests) == 0


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"model": "", "messages": [{"role": "user", "content": "Hi"}]}, "model"),
        ({"messages": []}, "messages"),
        ({"messages": [{"role": "wizard", "content": "Hi"}]}, "messages[0].role"),
        ({"messages": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello"}]}, "messages"),
        ({"messages": [{"role": "user", "content": [{"type": "input_audio", "input_audio": {"data": "x", "format": "wav"}}]}]},
         "messages[0].content[0].type"),
        ({"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "x"}}]}]},
         "messages[0].content[0].image_url.url"),
        ({"messages": [{"role": "user", "content": "Hi"}], "max_tokens": 0}, "max_tokens"),
        ({"messages": [{"role": "user", "content": "Hi"}], "stop": ["a", "b", "c", "d", "e"]}, "stop"),
        ({"messages": [{"role": "user", "content": "Hi"}], "n": 2}, "n"),
        ({"messages": [{"role": "user", "content": "Hi\u0000"}]}, "messages[0].content"),
        ({"messages": [{"role": "tool", "content": "x"}, {"role": "user", "content": "Hi"}]}, "messages[0].tool_call_id"),
    ],
)
def test_a_bad_body_is_a_400_naming_the_param(account, body, param):
    body = {"model": account.slug, **body}
    with pytest.raises(openai.BadRequestError) as refused:
        account.client().chat.completions.create(**body)
    assert refused.value.status_code == 400
    assert refused.value.body["param"] == param and refused.value.body["type"] == "invalid_request_error"


def test_the_apis_conduit_lacks_and_any_unknown_path_are_openais_404_which_the_sdk_reads(account):
    client = account.client()
    calls = [
        # No embeddings model configured (test_openai_responses_live.py has one), the legacy API, a typo.
        (lambda: client.embeddings.create(model=account.slug, input="Hi"), "No embeddings model is configured"),
        (lambda: client.completions.create(model=account.slug, prompt="Hi"), "use POST /v1/chat/completions"),
        (lambda: client.get("/nope", cast_to=object), "Invalid URL (GET /v1/nope)"),
    ]
    for call, message in calls:
        with pytest.raises(openai.NotFoundError) as refused:
            call()
        assert message in refused.value.body["message"] and message in str(refused.value)
        assert refused.value.body["type"] == "invalid_request_error"


def test_a_wrong_method_is_a_405_the_sdk_reads(account):
    with pytest.raises(openai.APIStatusError) as refused:
        account.client().get("/chat/completions", cast_to=object)
    assert refused.value.status_code == 405
    assert refused.value.body["message"] == "Invalid method for URL (GET /v1/chat/completions)"


def test_a_body_that_is_not_json_is_a_400(account):
    status, body = http_json("POST", f"{account.base}/v1/chat/completions", None, account.key)
    assert status == 400 and body["error"]["type"] == "invalid_request_error"


@pytest.mark.parametrize("chunked", [False, True])
def test_a_body_over_the_limit_is_a_413(account, chunked):
    # Over V1_CHAT_MAX_BODY_BYTES (2.5 MiB on this server).
    big = json.dumps({"model": account.slug, "messages": [{"role": "user", "content": "x" * 3_000_000}]}).encode()
    host = urlparse(account.base)
    connection = http.client.HTTPConnection(host.hostname, host.port, timeout=30)
    headers = {"Authorization": f"Bearer {account.key}", "Content-Type": "application/json"}
    if chunked:
        connection.request("POST", "/v1/chat/completions", iter([big[:1_000_000], big[1_000_000:]]), headers, encode_chunked=True)
    else:
        connection.request("POST", "/v1/chat/completions", big, headers)
    response = connection.getresponse()
    body = json.loads(response.read())
    connection.close()
    assert response.status == 413 and body["error"]["code"] == "request_too_large"


async def test_too_many_turns_at_once_is_a_429(account, fake_model):
    fake_model.script(Reply(text=["slow ", "answer"], pause_after=1))
    client = account.client()

    def first_answer() -> str:
        chunks = client.chat.completions.create(model=account.slug, messages=[{"role": "user", "content": "1"}], stream=True)
        return "".join(chunk.choices[0].delta.content or "" for chunk in chunks)

    first = asyncio.create_task(asyncio.to_thread(first_answer))
    await asyncio.to_thread(fake_model.wait_until_paused)
    try:
        with pytest.raises(openai.RateLimitError) as refused:
            await asyncio.to_thread(
                client.chat.completions.create, model=account.slug, messages=[{"role": "user", "content": "2"}]
            )
        assert refused.value.body["code"] == "too_many_turns"
    finally:
        fake_model.release()
    assert await first == "slow answer"


def test_a_used_up_budget_is_a_429_insufficient_quota_before_the_model_is_reached(account, fake_model, child_database):
    manage_shell(
        child_database,
        "from accounts.models import User; from usage.models import Budget; "
        f"Budget.objects.create(user=User.objects.get(email={account.email!r}), monthly_tokens=10)",
    )
    client = account.client()
    first = client.chat.completions.create(model=account.slug, messages=[{"role": "user", "content": "Hi"}])
    assert first.usage.total_tokens > 10  # under the budget when it started: it runs, and uses it up
    for stream in (False, True):
        with pytest.raises(openai.RateLimitError) as refused:
            client.chat.completions.create(model=account.slug, messages=[{"role": "user", "content": "More"}], stream=stream)
        assert refused.value.status_code == 429
        assert refused.value.body["code"] == "insufficient_quota" and refused.value.body["type"] == "insufficient_quota"
    assert len(fake_model.requests) == 1


@pytest.mark.parametrize("stream", [False, True])
def test_an_upstream_error_is_a_502(account, fake_model, stream):
    fake_model.script(HttpError(500, "api_error", "Internal server error"))
    with pytest.raises(openai.InternalServerError) as refused:
        account.client().chat.completions.create(
            model=account.slug, messages=[{"role": "user", "content": "Hi"}], stream=stream
        )
    assert refused.value.status_code == 502 and refused.value.body["code"] == "upstream_error"


def test_a_silent_upstream_is_a_504(account, fake_model):
    fake_model.script(Reply(text=["never"], pause_after=0))
    with pytest.raises(openai.InternalServerError) as refused:
        account.client().chat.completions.create(model=account.slug, messages=[{"role": "user", "content": "Hi"}])
    assert refused.value.status_code == 504 and refused.value.body["code"] == "upstream_timeout"


def test_an_upstream_rate_limit_is_a_429(account, fake_model):
    fake_model.script(HttpError(429, "rate_limit_error", "Slow down"))
    with pytest.raises(openai.RateLimitError) as refused:
        account.client().chat.completions.create(model=account.slug, messages=[{"role": "user", "content": "Hi"}])
    assert refused.value.body["code"] == "rate_limited"


def test_an_error_mid_stream_ends_the_stream_with_an_error_event_and_keeps_the_text(account, fake_model):
    fake_model.script(Reply(text=["partial ", "answer ", "lost"], error_after=2))
    received = []
    with account.client().chat.completions.with_streaming_response.create(
        model=account.slug, messages=[{"role": "user", "content": "Hi"}], stream=True
    ) as response:
        session_id = response.headers["x-session-id"]
        with pytest.raises(openai.APIError) as failed:
            for chunk in response.parse():
                received.append(chunk.choices[0].delta.content or "")
    assert "".join(received) == "partial answer "
    assert failed.value.body["code"] == "overloaded"
    stored = wait_for_status(account, session_id, "error")
    assert stored["status"] == "error" and stored["content"] == [{"type": "text", "text": "partial answer "}]


def test_a_client_that_hangs_up_mid_stream_stops_the_turn_and_keeps_the_partial_answer(account, fake_model):
    fake_model.script(Reply(text=["first ", "second ", "third"], pause_after=1))
    with account.client().chat.completions.with_streaming_response.create(
        model=account.slug, messages=[{"role": "user", "content": "Hi"}], stream=True
    ) as response:
        session_id = response.headers["x-session-id"]
        for chunk in response.parse():
            if chunk.choices and chunk.choices[0].delta.content:
                break  # the first words arrived: hang up
    stored = wait_for_status(account, session_id, "stopped")
    assert stored["status"] == "stopped" and stored["content"] == [{"type": "text", "text": "first "}]


def test_a_client_that_hangs_up_before_a_whole_completion_stops_the_turn(account, fake_model):
    fake_model.script(Reply(text=["first ", "second"], pause_after=1))
    host = urlparse(account.base)
    connection = http.client.HTTPConnection(host.hostname, host.port, timeout=15)
    body = json.dumps({"model": account.slug, "messages": [{"role": "user", "content": "Hi"}]})
    connection.request("POST", "/v1/chat/completions", body, {"Authorization": f"Bearer {account.key}", "Content-Type": "application/json"})
    fake_model.wait_until_paused()
    connection.close()  # hang up while the answer is half made

    status, sessions = http_json("GET", f"{account.base}/api/v1/sessions", None, account.key)
    stored = wait_for_status(account, sessions["results"][0]["id"], "stopped")
    assert stored["status"] == "stopped" and stored["content"] == [{"type": "text", "text": "first "}]


# --- websocket --------------------------------------------------------------------------------------


async def test_an_api_key_opens_the_websocket_and_revoking_it_closes_it(account, fake_model):
    socket = await open_socket(account.base, account.key)
    assert socket.subprotocol == "jwt"
    await socket.send(json.dumps({"type": "start", "agent": account.slug, "message": "Hi over the socket"}))
    frames = await receive_until(socket, "result")
    assert frames[-1]["status"] == "complete"

    status, _ = await asyncio.to_thread(
        http_json, "DELETE", f"{account.base}/api/v1/auth/api-keys/{account.key_id}", None, account.token
    )
    assert status == 204
    await asyncio.wait_for(socket.wait_closed(), 10)
    assert socket.close_code == 4401


async def test_a_revoked_or_unknown_key_cannot_open_the_websocket(account):
    socket = await open_socket(account.base, "cdk_" + uuid.uuid4().hex * 2)
    await asyncio.wait_for(socket.wait_closed(), 10)
    assert socket.close_code == 4401
