"""`/v1/responses` and `/v1/embeddings` on a real server process with the clients people use: the
official `openai` SDK (`responses.create`, `responses.stream`, `responses.retrieve`,
`embeddings.create`) and openai-agents' default model (OpenAIResponsesModel) run by `Runner.run`,
against the fake model servers (config/testing/)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import openai
import pytest

from assistant.tests.surfaces.test_openai_api_live import Account, child_database, manage_shell  # noqa: F401 - fixture
from config.testing.fake_anthropic import Reply, ToolUse, fake_anthropic_server
from config.testing.fake_openai import fake_openai_server
from config.testing.processes import http_json, running_server

pytestmark = pytest.mark.django_db(transaction=True, reset_sequences=True)

CLIENTS = Path(__file__).parents[1] / "clients"
EMBEDDINGS_MODEL = "text-embedding-test"


@pytest.fixture(scope="module")
def fake_model():
    with fake_anthropic_server() as fake:
        yield fake


@pytest.fixture(scope="module")
def fake_gpt():
    with fake_openai_server() as fake:
        yield fake


@pytest.fixture(scope="module")
def server(child_database):  # noqa: F811 - the imported fixture
    env = {"DATABASE_URL": child_database, "ANTHROPIC_MAX_RETRIES": "0", "OPENAI_MAX_RETRIES": "0",
           "OUTBOUND_ALLOWED_HOSTS": "127.0.0.1"}  # fmt: skip
    with running_server(env) as base:
        yield base


@pytest.fixture
def account(server, fake_model) -> Account:
    fake_model.requests.clear()
    return Account(server, fake_model.base_url)


def test_responses_create_answers_text_usage_and_continues_by_previous_response_id(account, fake_model):
    fake_model.script(Reply(text=["Hello, ", "Alice."], input_tokens=20, output_tokens=7), Reply(text=["You are Alice."]))
    client = account.client()

    first = client.responses.create(model=account.slug, input="Hi, I'm Alice", instructions="Answer kindly.")
    second = client.responses.with_raw_response.create(model=account.slug, input="Who am I?", previous_response_id=first.id)

    assert first.id.startswith("resp_") and first.status == "completed" and first.output_text == "Hello, Alice."
    assert first.usage.input_tokens == 20 and first.usage.output_tokens == 7 and first.usage.total_tokens == 27
    assert fake_model.requests[0].body["system"].endswith("Answer kindly.")
    assert second.parse().output_text == "You are Alice."
    assert [m["role"] for m in fake_model.requests[-1].body["messages"]] == ["user", "assistant", "user"]
    stored = account.stored_messages(second.headers["x-session-id"])
    assert [m["role"] for m in stored] == ["user", "assistant", "user", "assistant"]
    assert client.responses.retrieve(first.id).output_text == "Hello, Alice."
    client.responses.delete(first.id)
    with pytest.raises(openai.NotFoundError):
        client.responses.retrieve(first.id)
    with pytest.raises(openai.NotFoundError) as missing:
        client.responses.create(model=account.slug, input="More", previous_response_id="resp_nope")
    assert missing.value.body["code"] == "previous_response_not_found"


def test_responses_stream_sends_the_events_the_sdk_assembles(account, fake_model):
    fake_model.script(Reply(text=["One", " two", " three"], input_tokens=5, output_tokens=3))

    with account.client().responses.stream(model=account.slug, input="Count") as stream:
        events = list(stream)
        final = stream.get_final_response()

    deltas = [event.delta for event in events if event.type == "response.output_text.delta"]
    assert "".join(deltas) == "One two three" and final.output_text == "One two three"
    assert events[0].type == "response.created" and events[-1].type == "response.completed"
    assert [event.sequence_number for event in events] == list(range(len(events)))
    assert final.status == "completed" and final.usage.output_tokens == 3


def test_openai_agents_runner_runs_an_agent_on_conduit(account, fake_model):
    fake_model.script(
        Reply(text=["Hello, Alice."]), Reply(text=["You are Alice."]), Reply(text=["One, two."]),
        Reply(text=["Three."]), Reply(text=["Str", "eamed."]),
        Reply(tool_uses=[ToolUse("get_weather", {"city": "Paris"})], stop_reason="tool_use"), Reply(text=["Sunny."]),
    )  # fmt: skip
    env = {name: value for name, value in os.environ.items() if name != "PYTHONPATH"}

    # Its own process: openai-agents imports as `agents`, the name of Conduit's app.
    result = subprocess.run(
        [sys.executable, str(CLIENTS / "openai_agents_run.py"), account.base, account.key, account.slug],
        cwd=CLIENTS, capture_output=True, text=True, timeout=120, env=env,
    )  # fmt: skip

    assert result.returncode == 0, result.stderr
    out = json.loads(result.stdout)
    assert [out[k]["output"] for k in ("first", "chained", "opening", "carried", "streamed")] == [
        "Hello, Alice.", "You are Alice.", "One, two.", "Three.", "Streamed."
    ]  # fmt: skip
    assert out["streamed"]["deltas"] == ["Str", "eamed."]
    # A function_tool: called by the model, run by openai-agents, its result sent back in one session.
    assert out["tooled"]["output"] == "Sunny." and out["tooled"]["calls"] == ["Paris"]
    assert [tool["name"] for tool in fake_model.requests[5].body["tools"]] == ["get_weather"]
    result = fake_model.requests[6].body["messages"][-1]["content"][0]
    assert result["type"] == "tool_result" and result["content"] == "Sunny, 24°C in Paris"
    status, sessions = http_json("GET", f"{account.base}/api/v1/sessions", None, account.key)
    assert status == 200 and sessions["count"] == 4  # first + chained, opening + carried, streamed, tooled
    assert out["first"]["output_tokens"] > 0
    # The chained run continued the first one's session; the carried conversation continued its own.
    sent = [request.body for request in fake_model.requests]
    assert [m["role"] for m in sent[1]["messages"]] == ["user", "assistant", "user"]
    assert [m["role"] for m in sent[3]["messages"]] == ["user", "assistant", "user"]
    assert all(body["system"].endswith("Answer kindly.") for body in sent)
    first, chained = (account.client().responses.retrieve(out[k]["response_id"]) for k in ("first", "chained"))
    assert chained.previous_response_id == first.id


def test_embeddings_create_with_the_sdk(account, fake_gpt, child_database):  # noqa: F811 - the imported fixture
    manage_shell(
        child_database,
        "from agents.models import LLMProviderConfig as C; C.objects.create(name='E', provider='openai', "
        f"base_url='{fake_gpt.base_url}', api_key='sk-org', for_embeddings=True, embeddings_model='{EMBEDDINGS_MODEL}')",
    )
    client = account.client()

    floats = client.embeddings.create(model=EMBEDDINGS_MODEL, input=["alpha beta", "gamma"], encoding_format="float")
    decoded = client.embeddings.create(model=EMBEDDINGS_MODEL, input="alpha beta")  # the SDK asks for base64

    assert [len(item.embedding) for item in floats.data] == [8, 8] and floats.usage.prompt_tokens == 3
    assert decoded.data[0].embedding == pytest.approx(floats.data[0].embedding, abs=1e-6)
    with pytest.raises(openai.NotFoundError) as missing:
        client.embeddings.create(model="text-embedding-3-large", input="x")
    assert EMBEDDINGS_MODEL in missing.value.body["message"]
