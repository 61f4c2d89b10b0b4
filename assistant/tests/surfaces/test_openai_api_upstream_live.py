"""`/v1/chat/completions` on a real server process, with the real `openai` SDK as the client, against
model endpoints that end early or answer badly (issue 33):

- a user's `openai` config on the organization's endpoint, a client that hangs up after four chunks:
  Chat Completions reports usage only in its last chunk, which never comes; the stopped answer still
  counts an estimate, and repeated, a small token budget fills and the next request is a 429;
- a user's config whose server answers something that isn't its API's event stream (JSON, a web page,
  garbage): a 502 in OpenAI's error shape, never a 500.
"""

from __future__ import annotations

import time
import uuid

import openai
import pytest
from django.core.management import call_command
from django.db import connection

from config.testing.fake_anthropic import fake_anthropic_server
from config.testing.fake_openai import Chunks, fake_openai_server
from config.testing.processes import database_url_for_children, http_json, running_server, signed_up
from config.testing.servers import Raw

# reset_sequences: see test_openai_api_live (the server caches content type ids; PostgreSQL flushes).
pytestmark = pytest.mark.django_db(transaction=True, reset_sequences=True)

BUDGET = 150  # tokens a month, every user's (BUDGET_USER_MONTHLY_TOKENS)
WORDS = [f"word{n:02d} " for n in range(60)]


@pytest.fixture(scope="module")
def child_database(tmp_path_factory, django_db_setup, django_db_blocker) -> str:
    with django_db_blocker.unblock():
        if connection.vendor == "postgresql":
            call_command("flush", interactive=False, reset_sequences=True, verbosity=0)
        return database_url_for_children(tmp_path_factory.mktemp("openai-upstream"))


@pytest.fixture(scope="module")
def org_gpt():
    """The organization's OpenAI endpoint (OPENAI_BASE_URL)."""
    with fake_openai_server() as fake:
        yield fake


@pytest.fixture(scope="module")
def own_servers():
    """Model servers of users' own configs (their own base URL and key)."""
    with fake_anthropic_server() as claude, fake_openai_server() as gpt:
        yield {"anthropic": claude, "openai": gpt}


@pytest.fixture(scope="module")
def server(child_database, org_gpt, own_servers):
    env = {
        "DATABASE_URL": child_database, "OPENAI_API_KEY": "sk-organization-openai-key",
        "OPENAI_BASE_URL": org_gpt.base_url, "OPENAI_MODEL": "gpt-test-1", "OPENAI_MAX_RETRIES": "0",
        "ANTHROPIC_MAX_RETRIES": "0", "BUDGET_USER_MONTHLY_TOKENS": str(BUDGET),
        "OUTBOUND_ALLOWED_HOSTS": "127.0.0.1",  # the users' own configs name fake servers on 127.0.0.1
    }  # fmt: skip
    with running_server(env) as base:
        yield base


def user_with_agent(base: str, config: dict) -> tuple[str, str]:
    """A new user with an LLM config, an agent on it and a personal API key: (key, agent slug)."""
    _, token = signed_up(base)
    status, created = http_json("POST", f"{base}/api/v1/llm-configs", {"name": "Model", **config}, token)
    assert status == 201, created
    slug = f"agent-{uuid.uuid4().hex[:6]}"
    body = {"name": "Agent", "slug": slug, "system_prompt_text": "Be brief.", "llm_config": created["id"]}
    status, agent = http_json("POST", f"{base}/api/v1/agents", body, token)
    assert status == 201, agent
    status, key = http_json("POST", f"{base}/api/v1/auth/api-keys", {"name": "sdk"}, token)
    assert status == 201, key
    return key["key"], slug


def sdk(base: str, key: str) -> openai.OpenAI:
    return openai.OpenAI(api_key=key, base_url=f"{base}/v1", max_retries=0, timeout=30)


def last_message(base: str, key: str, session_id: str, status: str) -> dict:
    deadline = time.monotonic() + 15
    while True:
        code, page = http_json("GET", f"{base}/api/v1/sessions/{session_id}/messages", None, key)
        assert code == 200, page
        message = page["results"][-1]
        if message["status"] == status or time.monotonic() > deadline:
            return message
        time.sleep(0.1)


@pytest.fixture
def slow_long_answers(org_gpt):
    """The organization's endpoint answers at length, slowly: a client can leave midway."""
    org_gpt.default, default = Chunks(text=WORDS, delay=0.05), org_gpt.default
    yield
    org_gpt.default = default


# --- usage of answers cut off by the client ---------------------------------------------------------


def test_answers_a_client_cuts_off_after_four_chunks_are_counted_until_the_budget_refuses(server, slow_long_answers):
    key, slug = user_with_agent(server, {"provider": "openai", "model": "gpt-test-1"})  # the organization's endpoint
    client = sdk(server, key)
    refused = None
    for attempt in range(1, 13):
        try:
            with client.chat.completions.create(
                model=slug, messages=[{"role": "user", "content": "Tell me a long story."}], stream=True
            ) as stream:
                session_id = stream.response.headers["x-session-id"]
                for received, _ in enumerate(stream, 1):
                    if received == 4:
                        break  # and hang up
        except openai.RateLimitError as error:
            refused = error
            break
        stopped = last_message(server, key, session_id, "stopped")
        assert stopped["status"] == "stopped", "the answer was cut off, not finished"
        assert stopped["input_tokens"] > 0 and stopped["output_tokens"] > 0, "what was sent and received, estimated"
        _, usage = http_json("GET", f"{server}/api/v1/usage", None, key)
        assert usage["total_tokens"] > 0

    assert refused is not None, "twelve cut-off answers and the budget never filled"
    assert refused.status_code == 429 and refused.body["code"] == "insufficient_quota"  # budget_exceeded
    assert 1 < attempt < 12
    _, usage = http_json("GET", f"{server}/api/v1/usage", None, key)
    assert usage["total_tokens"] >= BUDGET and usage["budget"]["remaining_tokens"] == 0


# --- malformed answers of users' own endpoints --------------------------------------------------------

MESSAGE = (
    '{"id": "msg_1", "type": "message", "role": "assistant", "model": "m", "content": [{"type": "text", "text": "Hi"}],'
    ' "stop_reason": "end_turn", "stop_sequence": null, "usage": {"input_tokens": 3, "output_tokens": 1}}'
)
MALFORMED = {
    "a whole message as JSON": Raw(MESSAGE, "application/json"),
    "any JSON": Raw('{"hello": "world"}', "application/json"),
    "an HTML page": Raw("<html><body>Log in</body></html>", "text/html; charset=utf-8"),
    "garbage events": Raw("event: message_start\ndata: {not json\n\ndata: [1, 2\n\n"),
}


@pytest.mark.parametrize("provider", ["anthropic", "openai"])
@pytest.mark.parametrize("answer", MALFORMED.values(), ids=MALFORMED.keys())
def test_a_malformed_answer_of_a_users_model_server_is_a_502_in_openais_shape(server, own_servers, provider, answer):
    fake = own_servers[provider]
    key, slug = user_with_agent(
        server, {"provider": provider, "model": "m", "base_url": fake.base_url, "api_key": "sk-users-own"}
    )
    for stream in (False, True):
        fake.script(answer)
        with pytest.raises(openai.APIStatusError) as failed:
            answered = sdk(server, key).chat.completions.create(
                model=slug, messages=[{"role": "user", "content": "Hi"}], stream=stream
            )
            if stream:
                list(answered)  # a failure after the answer started would be an error event
        assert failed.value.status_code == 502, failed.value
        error = failed.value.body
        assert error["code"] == "upstream_error" and error["type"] == "server_error"
        assert "could not be read" in error["message"]
