"""The agent loop against the fake OpenAI Chat Completions API, through the real openai SDK."""

from __future__ import annotations

import asyncio
import json
import time

import pytest

from assistant.engine import (
    LoopFinished,
    LoopRequest,
    ModelCallFinished,
    ModelSettings,
    TextDelta,
    ThinkingDelta,
    ToolResults,
    ToolUseRequested,
    UsageReported,
    agent_loop,
)
from assistant.llm import LLMError
from assistant.tests.engine.test_engine import EchoTools
from config.testing.fake_openai import Chunks, FunctionCall, HttpError, fake_openai_server


@pytest.fixture
def fake(settings):
    settings.OPENAI_MAX_RETRIES = 0
    with fake_openai_server() as server:
        yield server


def request_for(fake, *, temperature: float | None = None, **overrides) -> LoopRequest:
    model = ModelSettings(
        model="gpt-test-1", api_key="sk-openai-test", base_url=fake.base_url, max_tokens=256,
        provider="openai", temperature=temperature,
    )  # fmt: skip
    values = {"model": model, "messages": [{"role": "user", "content": "Hi"}], "system": "Be brief."}
    values.update(overrides)
    return LoopRequest(**values)


async def collect(request: LoopRequest) -> list:
    return [event async for event in agent_loop(request)]


async def test_text_deltas_arrive_in_order_and_the_answer_is_stored_as_a_text_block(fake):
    fake.script(Chunks(text=["One", ", two", ", three."], reasoning=["Count."], completion_tokens=9, prompt_tokens=20))
    events = await collect(request_for(fake))
    assert [e.text for e in events if isinstance(e, TextDelta)] == ["One", ", two", ", three."]
    assert [e.text for e in events if isinstance(e, ThinkingDelta)] == ["Count."]
    finished = next(e for e in events if isinstance(e, ModelCallFinished))
    assert finished.content == [{"type": "text", "text": "One, two, three."}], "reasoning is shown, not stored"
    assert finished.stop_reason == "end_turn" and finished.model == "gpt-test-1"
    last = events[-1]
    assert isinstance(last, LoopFinished) and last.stop_reason == "end_turn" and last.turns == 1
    assert (last.usage.input_tokens, last.usage.output_tokens) == (20, 9)


async def test_the_request_is_a_chat_completions_request(fake):
    await collect(request_for(fake, stop_sequences=("END",)))
    sent = fake.requests[0]
    assert sent.path == "/v1/chat/completions" and sent.headers["authorization"] == "Bearer sk-openai-test"
    body = sent.body
    assert body["model"] == "gpt-test-1" and body["stream"] is True
    assert body["stream_options"] == {"include_usage": True}
    assert body["messages"] == [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}]
    # A compatible server's URL: max_tokens, which they all know (OpenAI's own: max_completion_tokens).
    assert body["max_tokens"] == 256 and "max_completion_tokens" not in body
    assert body["stop"] == ["END"]
    assert "temperature" not in body and "tools" not in body


async def test_the_body_is_sent_exactly_as_built_with_the_extra_headers_as_headers(fake):
    """The SDK sends request_params' JSON as it is (given as its extra body: its typed walk of the body
    cost more than the rest of the call) — nothing added, dropped or reshaped — and the call's extra
    headers as headers."""
    from assistant.llm.openai_chat import request_params
    from assistant.llm.types import ModelCall

    history = [
        {"role": "user", "content": [{"type": "text", "text": "What is this?"},
                                     {"type": "image", "source": {"type": "url", "url": "https://example.com/a.png"}}]},
        {"role": "assistant", "content": [{"type": "tool_use", "id": "call_1", "name": "echo", "input": {"text": "x"}}]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "call_1", "content": "x"}]},
    ]  # fmt: skip
    request = request_for(fake, messages=history, tools=EchoTools(), extra={"extra_headers": {"traceparent": "00-ab"}})
    await collect(request)
    sent = fake.requests[0]
    call = ModelCall(messages=history, system="Be brief.", tools=EchoTools().definitions(),
                     extra={"extra_headers": {"traceparent": "00-ab"}})  # fmt: skip
    expected = {name: value for name, value in request_params(request.model, call).items() if name != "extra_headers"}
    assert sent.body == json.loads(json.dumps(expected))
    assert sent.headers["traceparent"] == "00-ab"


async def test_temperature_is_sent_only_when_it_differs_from_the_default(fake):
    await collect(request_for(fake, temperature=0.3))
    await collect(request_for(fake, temperature=1.0))
    assert fake.requests[0].body["temperature"] == 0.3
    assert "temperature" not in fake.requests[1].body


async def test_tool_calls_streamed_in_pieces_are_assembled_run_and_answered_with_tool_messages(fake):
    first = FunctionCall("echo", {"say": "a", "nested": {"list": [1, 2, 3]}})
    second = FunctionCall("echo", {"say": "b"})
    fake.script(Chunks(text=["Checking."], tool_calls=[first, second]), Chunks(text=["Done."]))
    tools = EchoTools()
    events = await collect(request_for(fake, tools=tools, max_turns=3))

    requested = [e.call for e in events if isinstance(e, ToolUseRequested)]
    assert [(c.id, c.name, c.input) for c in requested] == [
        (first.id, "echo", first.arguments), (second.id, "echo", second.arguments),
    ]  # fmt: skip
    assert tools.most_at_once == 2, "parallel calls of one answer run concurrently"
    finished = [e for e in events if isinstance(e, ModelCallFinished)]
    assert finished[0].stop_reason == "tool_use"
    assert finished[0].content == [
        {"type": "text", "text": "Checking."},
        {"type": "tool_use", "id": first.id, "name": "echo", "input": first.arguments},
        {"type": "tool_use", "id": second.id, "name": "echo", "input": second.arguments},
    ]
    assert isinstance(events[-1], LoopFinished) and events[-1].stop_reason == "end_turn" and events[-1].turns == 2
    assert any(isinstance(e, ToolResults) for e in events)

    tools_sent = fake.requests[0].body["tools"]
    assert tools_sent == [{"type": "function", "function": {
        "name": "echo", "description": "Echo", "parameters": {"type": "object"}}}]  # fmt: skip
    second_request = fake.requests[1].body["messages"]
    assert second_request[2] == {
        "role": "assistant", "content": "Checking.",
        "tool_calls": [
            {"id": first.id, "type": "function", "function": {"name": "echo", "arguments": json.dumps(first.arguments)}},
            {"id": second.id, "type": "function", "function": {"name": "echo", "arguments": json.dumps(second.arguments)}},
        ],
    }  # fmt: skip
    assert second_request[3:] == [
        {"role": "tool", "tool_call_id": first.id, "content": "echo a"},
        {"role": "tool", "tool_call_id": second.id, "content": "echo b"},
    ]


@pytest.mark.parametrize(
    ("finish_reason", "ours"),
    [("stop", "end_turn"), ("length", "max_tokens"), ("content_filter", "refusal")],
)
async def test_finish_reasons_become_our_stop_reasons(fake, finish_reason, ours):
    fake.script(Chunks(text=["x"], finish_reason=finish_reason))
    events = await collect(request_for(fake))
    assert next(e for e in events if isinstance(e, ModelCallFinished)).stop_reason == ours
    assert events[-1].stop_reason == ours


async def test_usage_comes_from_the_usage_chunk_with_cached_tokens_apart(fake):
    fake.script(Chunks(text=["a", "b"], prompt_tokens=100, cached_tokens=60, completion_tokens=7))
    events = await collect(request_for(fake))
    reported = [e.usage for e in events if isinstance(e, UsageReported)]
    expected = {"input_tokens": 40, "output_tokens": 7, "cache_read_input_tokens": 60, "cache_creation_input_tokens": 0}
    assert len(reported) == 2 and reported[0] is reported[1], "the estimate's object, then the last chunk's figures in it"
    assert reported[-1].as_dict() == expected and not reported[-1].estimated
    assert next(e for e in events if isinstance(e, ModelCallFinished)).usage.as_dict() == expected


async def test_a_server_that_sends_no_usage_chunk_still_answers_with_an_estimate(fake):
    fake.script(Chunks(text=["fine"], send_usage=False))
    events = await collect(request_for(fake))
    assert events[-1].stop_reason == "end_turn"
    usage = events[-1].usage
    assert usage.estimated and usage.output_tokens == 1 and usage.input_tokens > 0  # "fine": 4 bytes


@pytest.mark.parametrize(
    ("failure", "code"),
    [
        (HttpError(401, "invalid_api_key", "Incorrect API key provided"), "upstream_auth"),
        (HttpError(403, "unsupported_country_region_territory", "Not here"), "upstream_auth"),
        (HttpError(429, "rate_limit_exceeded", "Rate limit reached", type="requests"), "rate_limited"),
        (HttpError(429, "insufficient_quota", "You exceeded your quota", type="insufficient_quota"), "rate_limited"),
        (HttpError(503, "overloaded", "The engine is currently overloaded", type="server_error"), "overloaded"),
        (HttpError(500, "server_error", "Internal", type="server_error"), "upstream_error"),
        (HttpError(404, "model_not_found", "The model does not exist"), "invalid_request"),
        (HttpError(400, "context_length_exceeded", "Too long"), "invalid_request"),
    ],
)
async def test_http_errors_become_the_same_codes_as_for_anthropic(fake, failure, code):
    fake.script(failure)
    with pytest.raises(LLMError) as error:
        await collect(request_for(fake))
    assert error.value.code == code


async def test_a_rate_limit_is_retried_after_the_time_the_server_asks(fake, settings):
    settings.OPENAI_MAX_RETRIES = 1
    fake.script(HttpError(429, "rate_limit_exceeded", "Slow down", retry_after=0.6), Chunks(text=["Made it."]))
    events = await collect(request_for(fake))
    assert [e.text for e in events if isinstance(e, TextDelta)] == ["Made it."]
    assert len(fake.requests) == 2
    assert fake.requests[1].at - fake.requests[0].at >= 0.6, "the retry waited as long as retry-after said"


async def test_an_error_chunk_mid_stream_keeps_the_deltas_already_yielded(fake):
    fake.script(Chunks(text=["par", "tial", "never"], error_after=2))
    seen = []
    with pytest.raises(LLMError) as error:
        async for event in agent_loop(request_for(fake)):
            if isinstance(event, TextDelta):
                seen.append(event.text)
    assert seen == ["par", "tial"] and error.value.code == "upstream_error"


async def test_a_stream_cut_before_its_end_is_upstream_unavailable(fake):
    fake.script(Chunks(text=["a", "b", "c"], drop_after=1))
    seen = []
    with pytest.raises(LLMError) as error:
        async for event in agent_loop(request_for(fake)):
            seen.append(event)
    assert error.value.code == "upstream_unavailable"
    assert [e.text for e in seen if isinstance(e, TextDelta)] == ["a"]
    assert not [e for e in seen if isinstance(e, ModelCallFinished)], "a cut answer is not passed off as complete"


async def test_an_unreachable_model_is_upstream_unavailable(settings):
    settings.OPENAI_MAX_RETRIES = 0
    model = ModelSettings(model="m", api_key="k", base_url="http://127.0.0.1:9/v1", max_tokens=10, provider="openai")
    with pytest.raises(LLMError) as error:
        await collect(LoopRequest(model=model, messages=[{"role": "user", "content": "x"}]))
    assert error.value.code == "upstream_unavailable"


async def test_a_missing_api_key_is_not_configured_before_anything_is_sent(fake):
    model = ModelSettings(model="m", api_key="", base_url=fake.base_url, max_tokens=10, provider="openai")
    with pytest.raises(LLMError) as error:
        await collect(LoopRequest(model=model, messages=[{"role": "user", "content": "x"}]))
    assert error.value.code == "not_configured" and fake.requests == []


async def test_cancelling_the_loop_closes_the_upstream_stream(fake):
    fake.script(Chunks(text=["a", "b", "c", "d"], pause_after=2))
    seen = []

    async def consume():
        async for event in agent_loop(request_for(fake)):
            if isinstance(event, TextDelta):
                seen.append(event.text)

    task = asyncio.create_task(consume())
    await asyncio.get_running_loop().run_in_executor(None, fake.wait_until_paused)
    for _ in range(200):  # the server paused after two pieces; wait until the client read them
        if len(seen) == 2:
            break
        await asyncio.sleep(0.01)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    fake.release()
    await asyncio.get_running_loop().run_in_executor(None, fake.requests[0].finished.wait, 10)
    assert seen == ["a", "b"]
    assert fake.requests[0].disconnected


async def test_a_model_slower_than_the_read_timeout_is_upstream_timeout(fake, settings):
    settings.OPENAI_READ_TIMEOUT = 0.3
    fake.script(Chunks(text=["slow", "er"], delay=1.0))
    started = time.monotonic()
    with pytest.raises(LLMError) as error:
        await collect(request_for(fake))
    assert error.value.code == "upstream_timeout" and time.monotonic() - started < 5


async def test_the_hosts_openai_environment_reaches_no_endpoint(fake, monkeypatch):
    """The SDK reads OPENAI_ORG_ID / OPENAI_PROJECT_ID / OPENAI_BASE_URL from the environment by itself;
    only Conduit's settings decide where a call goes and what it carries."""
    monkeypatch.setenv("OPENAI_ORG_ID", "org-of-the-host")
    monkeypatch.setenv("OPENAI_PROJECT_ID", "proj-of-the-host")
    monkeypatch.setenv("OPENAI_BASE_URL", "http://127.0.0.1:9/v1")
    events = await collect(request_for(fake))
    assert events[-1].stop_reason == "end_turn"
    headers = fake.requests[0].headers
    assert "openai-organization" not in headers and "openai-project" not in headers
