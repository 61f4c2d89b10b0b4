"""A model call counts what it cost even when it ends before the provider says (issue 33, item 3):
the usage object an adapter reports once, and keeps up to date in place, holds an estimate of input
(what was sent) and output (what arrived) at the moment a stop, a cut or a failure lands — what the
turn runner stores on the message and the budgets count. Through the real SDKs and fake servers."""

from __future__ import annotations

import asyncio
import json

import pytest

from assistant.engine import LoopRequest, ModelSettings, TextDelta, ToolUseRequested, UsageReported, agent_loop
from assistant.llm import LLMError, ModelCall
from assistant.llm.estimates import CallMeter, input_estimate
from config.testing.fake_anthropic import Reply, fake_anthropic_server
from config.testing.fake_openai import Chunks, FunctionCall, fake_openai_server

WORDS = [f"word{n:02d} " for n in range(40)]  # 7 bytes each
SYSTEM = "You are a careful assistant. " * 10
MESSAGES = [{"role": "user", "content": [{"type": "text", "text": "Tell me a long story."}]}]


@pytest.fixture
def gpt(settings):
    settings.OPENAI_MAX_RETRIES = 0
    with fake_openai_server() as server:
        yield server


@pytest.fixture
def claude(settings):
    settings.ANTHROPIC_MAX_RETRIES = 0
    with fake_anthropic_server() as server:
        yield server


def request_to(fake, provider: str) -> LoopRequest:
    name = "gpt-test-1" if provider == "openai" else "claude-test-1"
    model = ModelSettings(model=name, api_key="sk-test", base_url=fake.base_url, max_tokens=256, provider=provider)
    return LoopRequest(model=model, messages=MESSAGES, system=SYSTEM)


SENT = input_estimate(ModelCall(messages=MESSAGES, system=SYSTEM))


async def usage_held_at_the_stop(request: LoopRequest, deltas: int):
    """Iterate the loop as the turn runner does (keeping the reported usage), and stop it — cancel
    its task, as a user's stop does — after `deltas` text deltas. Returns the usage it holds then."""
    held = {}
    four = asyncio.Event()

    async def relay():
        seen = 0
        async for event in agent_loop(request):
            if isinstance(event, UsageReported):
                held["usage"] = event.usage
            elif isinstance(event, TextDelta):
                seen += 1
                if seen == deltas:
                    four.set()

    task = asyncio.create_task(relay())
    await asyncio.wait_for(four.wait(), 10)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    return held["usage"]


async def test_an_openai_stream_stopped_after_four_deltas_holds_an_estimate(gpt):
    gpt.script(Chunks(text=WORDS, pause_after=6))  # the server waits there: the stop lands mid-answer
    try:
        usage = await usage_held_at_the_stop(request_to(gpt, "openai"), deltas=4)
    finally:
        gpt.release()
    assert usage.input_tokens == SENT > 80 and usage.estimated  # ~360 bytes sent
    # The four deltas, and up to the two the server sent before it paused, at 4 bytes a token.
    assert 4 * 7 / 4 <= usage.output_tokens <= 6 * 7 / 4 + 1
    assert usage.cache_read_input_tokens == usage.cache_creation_input_tokens == 0


async def test_an_anthropic_stream_stopped_after_four_deltas_holds_its_input_and_an_output_estimate(claude):
    claude.script(Reply(text=WORDS, input_tokens=321, start_output_tokens=1, pause_after=6))
    try:
        usage = await usage_held_at_the_stop(request_to(claude, "anthropic"), deltas=4)
    finally:
        claude.release()
    assert usage.input_tokens == 321, "message_start's count, the provider's own"
    assert 4 * 7 / 4 <= usage.output_tokens <= 6 * 7 / 4 + 1 and usage.estimated


@pytest.mark.parametrize("cut", [{"drop_after": 4}, {"error_after": 4}], ids=["dropped", "error_chunk"])
async def test_an_openai_stream_cut_after_four_chunks_has_counted_them(gpt, cut):
    gpt.script(Chunks(text=WORDS, **cut))
    held = None
    with pytest.raises(LLMError):
        async for event in agent_loop(request_to(gpt, "openai")):
            if isinstance(event, UsageReported):
                held = event.usage
    assert held.input_tokens == SENT and held.output_tokens == 7  # 28 bytes
    assert held.estimated


async def test_a_complete_stream_without_a_usage_chunk_finishes_with_the_estimate(gpt):
    call = FunctionCall("lookup", {"query": "x" * 60})
    gpt.script(Chunks(tool_calls=[call], send_usage=False))
    events = [event async for event in agent_loop(request_to(gpt, "openai"))]
    assert any(isinstance(event, ToolUseRequested) for event in events)
    usage = events[-1].usage
    # Tool calls are output too: the name and the arguments as streamed.
    assert usage.output_tokens == -(-(len("lookup") + len(json.dumps(call.arguments))) // 4)
    assert usage.input_tokens == SENT and usage.estimated


@pytest.mark.parametrize("provider", ["openai", "anthropic"])
async def test_a_long_stream_reports_usage_a_few_times_not_per_delta(gpt, claude, provider):
    fake = gpt if provider == "openai" else claude
    fake.script(Chunks(text=WORDS) if provider == "openai" else Reply(text=WORDS))
    events = [event async for event in agent_loop(request_to(fake, provider))]
    reported = [event for event in events if isinstance(event, UsageReported)]
    # Opened, then each figure the provider sends: the last chunk; message_start and message_delta.
    assert len(reported) == (2 if provider == "openai" else 3)
    assert not reported[-1].usage.estimated


def test_the_estimate_is_a_quarter_of_the_utf8_bytes_sent():
    call = ModelCall(messages=[{"role": "user", "content": "Hi"}], system="Be brief.",
                     tools=[{"name": "echo", "description": "Echo", "input_schema": {"type": "object"}}])  # fmt: skip
    sent = json.dumps([call.system, call.messages, call.tools], ensure_ascii=False, separators=(",", ":"))
    assert input_estimate(call) == -(-len(sent.encode()) // 4)


def test_scripts_with_more_tokens_per_character_count_more():
    meter = CallMeter(ModelCall(messages=[]))
    meter.received("日本語のテキスト")  # 8 characters, 24 bytes: about as many tokens as characters
    assert meter.usage.output_tokens == 6
