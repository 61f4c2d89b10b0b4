"""`/v1/chat/completions` on a real server process, with the real `openai` SDK as the client, against
model endpoints that answer badly (issue 33): a user's config whose server answers something that isn't
its API's event stream (JSON, a web page, garbage): a 502 in OpenAI's error shape, never a 500.
"""

from __future__ import annotations

import uuid

import openai
import pytest
from django.core.management import call_command
from django.db import connection

from config.testing.fake_anthropic import fake_anthropic_server
from config.testing.fake_openai import fake_openai_server
from config.testing.processes import database_url_for_children, http_json, running_server, signed_up
from config.testing.servers import Raw

# reset_sequences: see test_openai_api_live (the server caches content type ids; PostgreSQL flushes).
pytestmark = pytest.mark.django_db(transaction=True, reset_sequences=True)

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
        "ANTHROPIC_MAX_RETRIES": "0",
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
