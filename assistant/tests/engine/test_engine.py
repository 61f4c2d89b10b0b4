"""The agent loop against the fake Messages API, through the real SDK."""

from __future__ import annotations

import asyncio

import pytest

from assistant.engine import (
    LoopFinished,
    LoopRequest,
    ModelCallFinished,
    ModelSettings,
    TextDelta,
    ThinkingDelta,
    ToolCall,
    ToolOutcome,
    ToolResults,
    ToolUseRequested,
    UsageReported,
    agent_loop,
)
from assistant.llm import LLMError
from config.testing.fake_anthropic import HttpError, Reply, ToolUse, fake_anthropic_server


@pytest.fixture
def fake(settings):
    settings.ANTHROPIC_MAX_RETRIES = 0
    with fake_anthropic_server() as server:
        yield server


def request_for(fake, **overrides) -> LoopRequest:
    model = ModelSettings(model="claude-test-1", api_key="sk-test", base_url=fake.base_url, max_tokens=256)
    values = {"model": model, "messages": [{"role": "user", "content": "Hi"}], "system": "Be brief."}
    values.update(overrides)
    return LoopRequest(**values)


async def collect(request: LoopRequest) -> list:
    return [event async for event in agent_loop(request)]


class EchoTools:
    def __init__(self):
        self.calls: list[ToolCall] = []
        self.running = 0
        self.most_at_once = 0

    def definitions(self):
        return [{"name": "echo", "description": "Echo", "input_schema": {"type": "object"}}]

    async def run(self, call: ToolCall) -> ToolOutcome:
        self.calls.append(call)
        self.running += 1
        self.most_at_once = max(self.most_at_once, self.running)
        await asyncio.sleep(0.05)
        self.running -= 1
        return ToolOutcome(call.id, f"echo {call.input['say']}")


async def test_text_deltas_arrive_in_order_and_add_up_to_the_answer(fake):
    fake.script(Reply(text=["One", ", two", ", three."], thinking=["Let me count."], output_tokens=9))
    events = await collect(request_for(fake))
    assert [e.text for e in events if isinstance(e, TextDelta)] == ["One", ", two", ", three."]
    assert [e.text for e in events if isinstance(e, ThinkingDelta)] == ["Let me count."]
    finished = next(e for e in events if isinstance(e, ModelCallFinished))
    text_block = next(b for b in finished.content if b["type"] == "text")
    assert text_block == {"type": "text", "text": "One, two, three."}
    last = events[-1]
    assert isinstance(last, LoopFinished) and last.stop_reason == "end_turn" and last.turns == 1
    assert last.usage.output_tokens == 9 and last.usage.input_tokens == 12
    sent = fake.requests[0].body
    assert sent["system"] == "Be brief." and sent["model"] == "claude-test-1" and sent["max_tokens"] == 256


async def test_parallel_tool_calls_run_concurrently_and_results_go_back_in_the_right_shape(fake):
    first, second = ToolUse("echo", {"say": "a"}), ToolUse("echo", {"say": "b"})
    fake.script(Reply(text=["Checking."], tool_uses=[first, second], stop_reason="tool_use"), Reply(text=["Done."]))
    tools = EchoTools()
    events = await collect(request_for(fake, tools=tools, max_turns=5))
    assert [e.call.id for e in events if isinstance(e, ToolUseRequested)] == [first.id, second.id]
    assert tools.most_at_once == 2
    results = next(e for e in events if isinstance(e, ToolResults)).results
    assert [r.content for r in results] == ["echo a", "echo b"]
    second_request = fake.requests[1].body
    assert second_request["tools"][0]["name"] == "echo"
    assert second_request["messages"][1]["role"] == "assistant"
    assert second_request["messages"][1]["content"][1] == {"type": "tool_use", "id": first.id, "name": "echo", "input": {"say": "a"}}
    assert second_request["messages"][2] == {
        "role": "user",
        "content": [
            {"type": "tool_result", "tool_use_id": first.id, "content": "echo a", "is_error": False},
            {"type": "tool_result", "tool_use_id": second.id, "content": "echo b", "is_error": False},
        ],
    }
    assert events[-1].turns == 2 and events[-1].stop_reason == "end_turn"


async def test_the_turn_limit_ends_the_loop(fake):
    fake.default = Reply(tool_uses=[ToolUse("echo", {"say": "again"})], stop_reason="tool_use")
    events = await collect(request_for(fake, tools=EchoTools(), max_turns=2))
    assert events[-1].stop_reason == "max_turns" and len(fake.requests) == 2


@pytest.mark.parametrize(
    ("failure", "code"),
    [
        (HttpError(401, "authentication_error", "invalid x-api-key"), "upstream_auth"),
        (HttpError(429, "rate_limit_error", "Rate limited"), "rate_limited"),
        (HttpError(529, "overloaded_error", "Overloaded"), "overloaded"),
        (HttpError(500, "api_error", "Internal"), "upstream_error"),
        (HttpError(400, "invalid_request_error", "bad"), "invalid_request"),
    ],
)
async def test_http_errors_become_clear_codes(fake, failure, code):
    fake.script(failure)
    with pytest.raises(LLMError) as error:
        await collect(request_for(fake))
    assert error.value.code == code


async def test_an_error_event_mid_stream_keeps_the_deltas_already_yielded(fake):
    fake.script(Reply(text=["par", "tial", "never"], error_after=2))
    seen = []
    with pytest.raises(LLMError) as error:
        async for event in agent_loop(request_for(fake)):
            if isinstance(event, TextDelta):
                seen.append(event.text)
    assert seen == ["par", "tial"] and error.value.code == "overloaded"


async def test_a_connection_cut_mid_stream_is_upstream_unavailable(fake):
    fake.script(Reply(text=["a", "b", "c"], drop_after=1))
    with pytest.raises(LLMError) as error:
        await collect(request_for(fake))
    assert error.value.code == "upstream_unavailable"


async def reported_usage(request: LoopRequest, into: list) -> list:
    """The loop's events; `into` gets (usage figures, estimated) as each UsageReported had them."""
    events = []
    async for event in agent_loop(request):
        events.append(event)
        if isinstance(event, UsageReported):
            into.append((event.usage.as_dict(), event.usage.estimated))
    return events


async def test_usage_is_reported_from_message_start_then_message_delta(fake):
    reply = Reply(text=["a", "b"], input_tokens=41, start_output_tokens=2, output_tokens=7,
                  cache_read_input_tokens=5, cache_creation_input_tokens=3)  # fmt: skip
    fake.script(reply)
    reported = []
    events = await reported_usage(request_for(fake), reported)
    final = {**reply.start_usage(), "output_tokens": reply.output_tokens}
    estimate, *by_the_provider = reported
    assert estimate[0]["input_tokens"] > 0 and estimate[0]["output_tokens"] == 0 and estimate[1]
    assert by_the_provider == [(reply.start_usage(), True), (final, False)], "output is estimated until message_delta"
    assert next(e for e in events if isinstance(e, ModelCallFinished)).usage.as_dict() == final
    assert len({id(e.usage) for e in events if isinstance(e, UsageReported)}) == 1, "one object, kept up to date"
    assert events.index(next(e for e in events if isinstance(e, UsageReported))) < events.index(
        next(e for e in events if isinstance(e, TextDelta))
    ), "the usage so far is known before the first word"


@pytest.mark.parametrize("cut", [{"drop_after": 2}, {"error_after": 2}], ids=["dropped", "error_event"])
async def test_a_call_cut_short_keeps_its_message_start_input_and_an_estimate_of_its_output(fake, cut):
    reply = Reply(text=["x" * 40, "y" * 40, "never"], input_tokens=33, start_output_tokens=2, cache_read_input_tokens=4, **cut)
    fake.script(reply)
    held = None
    with pytest.raises(LLMError):
        async for event in agent_loop(request_for(fake)):
            if isinstance(event, UsageReported):
                held = event.usage  # what the turn runner keeps
    assert held.as_dict() == {**reply.start_usage(), "output_tokens": 20}  # 80 bytes received
    assert held.estimated


async def test_an_unreachable_model_is_upstream_unavailable(settings):
    settings.ANTHROPIC_MAX_RETRIES = 0
    model = ModelSettings(model="m", api_key="k", base_url="http://127.0.0.1:9", max_tokens=10)
    with pytest.raises(LLMError) as error:
        await collect(LoopRequest(model=model, messages=[{"role": "user", "content": "x"}]))
    assert error.value.code == "upstream_unavailable"


async def test_a_missing_api_key_is_not_configured():
    model = ModelSettings(model="m", api_key="", max_tokens=10)
    with pytest.raises(LLMError) as error:
        await collect(LoopRequest(model=model, messages=[{"role": "user", "content": "x"}]))
    assert error.value.code == "not_configured"


async def test_cancelling_the_loop_closes_the_upstream_stream(fake):
    fake.script(Reply(text=["a", "b", "c", "d"], pause_after=2))
    seen = []

    async def consume():
        async for event in agent_loop(request_for(fake)):
            if isinstance(event, TextDelta):
                seen.append(event.text)

    task = asyncio.create_task(consume())
    await asyncio.get_running_loop().run_in_executor(None, fake.wait_until_paused)
    for _ in range(200):  # the server paused after two chunks; wait until the client read them
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
    settings.ANTHROPIC_READ_TIMEOUT = 0.3
    fake.script(Reply(text=["slow", "er"], delay=1.0))
    with pytest.raises(LLMError) as error:
        await collect(request_for(fake))
    assert error.value.code == "upstream_timeout"
