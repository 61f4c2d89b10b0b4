"""A model endpoint that answers something else than its API's event stream — a user's own server, a
proxy, a wrong base URL — ends the call with a clear LLMError (502 on the surfaces), never an
exception of the SDK or of ours: both adapters, through the real SDKs, against the fake servers
sending each answer as it is (`Raw`)."""

from __future__ import annotations

import json

import pytest

from assistant.engine import LoopRequest, ModelSettings, TextDelta, agent_loop
from assistant.llm import LLMError
from assistant.llm.anthropic_messages import stream_call
from assistant.llm.types import (
    MAX_REPORTED_TOKENS,
    ModelCall,
    ModelCallFinished,
    ThinkingDelta,
    ToolUseRequested,
    UsageReported,
)
from config.testing.fake_anthropic import Reply, fake_anthropic_server
from config.testing.fake_openai import Chunks, fake_openai_server
from config.testing.servers import Raw

MESSAGE = {
    "id": "msg_1", "type": "message", "role": "assistant", "model": "claude-test-1",
    "content": [{"type": "text", "text": "Hi"}], "stop_reason": "end_turn", "stop_sequence": None,
    "usage": {"input_tokens": 3, "output_tokens": 1},
}  # fmt: skip
COMPLETION = {
    "id": "chatcmpl-1", "object": "chat.completion", "created": 1, "model": "gpt-test-1",
    "choices": [{"index": 0, "message": {"role": "assistant", "content": "Hi"}, "finish_reason": "stop"}],
}  # fmt: skip


def sse(*events: tuple[str | None, object]) -> str:
    return "".join((f"event: {name}\n" if name else "") + f"data: {json.dumps(data)}\n\n" for name, data in events)


OPENAI_STREAM = sse((None, {"id": "c", "object": "chat.completion.chunk", "created": 1, "model": "m",
                            "choices": [{"index": 0, "delta": {"content": "Hi"}, "finish_reason": "stop"}]})) + "data: [DONE]\n\n"  # fmt: skip
MESSAGE_START = ("message_start", {"type": "message_start", "message": {**MESSAGE, "content": [], "stop_reason": None}})
ANTHROPIC_STREAM = sse(
    MESSAGE_START,
    ("content_block_start", {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}}),
    ("content_block_delta", {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "Hi"}}),
)  # no content_block_stop, message_delta or message_stop: a stream that ends without its final event

# What both adapters get: answers no streaming endpoint of either API sends.
NOT_A_STREAM = {
    "a whole message as JSON": Raw(json.dumps(MESSAGE), "application/json"),
    "a whole completion as JSON": Raw(json.dumps(COMPLETION), "application/json"),
    "any JSON": Raw('{"hello": ["world"]}', "application/json; charset=utf-8"),
    "a JSON list": Raw("[1, 2, 3]", "application/json"),
    "an HTML page": Raw("<html><body>Sign in to the Wi-Fi</body></html>", "text/html"),
    "plain garbage": Raw(b"\x00\x01\xffgarbage", "text/plain"),
    "an empty stream": Raw("", "text/event-stream"),
    "events that aren't JSON": Raw("event: message_start\ndata: not json\n\ndata: not json\n\n"),
}
FOR_ANTHROPIC = {
    **NOT_A_STREAM,
    "a lone surrogate in the text (no UTF-8 can store it)": Raw(sse(
        MESSAGE_START,
        ("content_block_start", {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}}),
        ("content_block_delta", {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "\ud800"}}),
    )),  # fmt: skip
    "an OpenAI stream": Raw(OPENAI_STREAM),
    "a message that is a number": Raw(sse(("message_start", {"type": "message_start", "message": 5}))),
    "a delta before message_start": Raw(sse(
        ("content_block_delta", {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "x"}}),
    )),  # fmt: skip
    "a delta of a block that never started": Raw(sse(
        MESSAGE_START,
        ("content_block_delta", {"type": "content_block_delta", "index": 3, "delta": {"type": "text_delta", "text": "x"}}),
    )),  # fmt: skip
    "a text that is a number": Raw(sse(
        MESSAGE_START,
        ("content_block_start", {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}}),
        ("content_block_delta", {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": 5}}),
    )),  # fmt: skip
    "a tool call whose input is not JSON": Raw(sse(
        MESSAGE_START,
        ("content_block_start", {"type": "content_block_start", "index": 0,
                                 "content_block": {"type": "tool_use", "id": "t", "name": "f", "input": {}}}),
        ("content_block_delta", {"type": "content_block_delta", "index": 0, "delta": {"type": "input_json_delta", "partial_json": '{"a": '}}),
        ("content_block_stop", {"type": "content_block_stop", "index": 0}),
    )),  # fmt: skip
    "a tool call whose input is a list": Raw(sse(
        MESSAGE_START,
        ("content_block_start", {"type": "content_block_start", "index": 0,
                                 "content_block": {"type": "tool_use", "id": "t", "name": "f", "input": {}}}),
        ("content_block_delta", {"type": "content_block_delta", "index": 0, "delta": {"type": "input_json_delta", "partial_json": "[1]"}}),
        ("content_block_stop", {"type": "content_block_stop", "index": 0}),
    )),  # fmt: skip
    "a block that starts at the wrong place": Raw(sse(
        MESSAGE_START,
        ("content_block_start", {"type": "content_block_start", "index": 2, "content_block": {"type": "text", "text": ""}}),
    )),  # fmt: skip
    "an event that is a list": Raw(sse(MESSAGE_START, (None, [1, 2]))),
}
FOR_OPENAI = {
    **NOT_A_STREAM,
    "a lone surrogate in the text (no UTF-8 can store it)": Raw(sse(
        (None, {"id": "c", "object": "chat.completion.chunk", "created": 1, "model": "m",
                "choices": [{"index": 0, "delta": {"content": "\ud800"}, "finish_reason": None}]}),
    )),  # fmt: skip
    "an Anthropic stream": Raw(ANTHROPIC_STREAM),
    "choices that are a string": Raw('data: {"choices": "x"}\n\ndata: [DONE]\n\n'),
    "a delta that is a number": Raw('data: {"choices": [{"index": 0, "delta": 5}]}\n\ndata: [DONE]\n\n'),
    "content that is a list": Raw('data: {"choices": [{"index": 0, "delta": {"content": [1]}, "finish_reason": "stop"}]}\n\n'),
    "a tool call id that is a number": Raw(
        'data: {"choices": [{"index": 0, "delta": {"tool_calls": [{"index": 0, "id": 7, "function": '
        '{"name": "f", "arguments": "{}"}}]}, "finish_reason": "tool_calls"}]}\n\ndata: [DONE]\n\n'
    ),
    "a tool name that is an object": Raw(
        'data: {"choices": [{"index": 0, "delta": {"tool_calls": [{"index": 0, "id": "a", "function": '
        '{"name": {"x": 1}, "arguments": "{}"}}]}, "finish_reason": "tool_calls"}]}\n\ndata: [DONE]\n\n'
    ),
}


@pytest.fixture
def claude(settings):
    settings.ANTHROPIC_MAX_RETRIES = 0
    with fake_anthropic_server() as server:
        yield server


@pytest.fixture
def gpt(settings):
    settings.OPENAI_MAX_RETRIES = 0
    with fake_openai_server() as server:
        yield server


def claude_request(fake) -> LoopRequest:
    model = ModelSettings(model="claude-test-1", api_key="sk-test", base_url=fake.base_url, max_tokens=64)
    return LoopRequest(model=model, messages=[{"role": "user", "content": "Hi"}])


def gpt_request(fake) -> LoopRequest:
    model = ModelSettings(model="gpt-test-1", api_key="sk-test", base_url=fake.base_url, max_tokens=64, provider="openai")
    return LoopRequest(model=model, messages=[{"role": "user", "content": "Hi"}])


async def failure_of(request: LoopRequest) -> LLMError:
    with pytest.raises(LLMError) as failed:
        async for _ in agent_loop(request):
            pass
    return failed.value


@pytest.mark.parametrize("answer", FOR_ANTHROPIC.values(), ids=FOR_ANTHROPIC.keys())
async def test_the_anthropic_adapter_reports_a_malformed_answer_as_upstream_error(claude, answer):
    claude.script(answer)
    error = await failure_of(claude_request(claude))
    assert error.code == "upstream_error" and "could not be read" in error.message


@pytest.mark.parametrize("answer", FOR_OPENAI.values(), ids=FOR_OPENAI.keys())
async def test_the_openai_adapter_reports_a_malformed_answer_as_upstream_error(gpt, answer):
    gpt.script(answer)
    error = await failure_of(gpt_request(gpt))
    assert error.code == "upstream_error" and "could not be read" in error.message


async def test_json_instead_of_a_stream_is_named_in_the_message(claude):
    claude.script(Raw(json.dumps(MESSAGE), "application/json"))
    error = await failure_of(claude_request(claude))
    assert "application/json instead of an event stream" in error.message


async def test_an_anthropic_stream_that_ends_without_its_final_events_is_cut_off(claude):
    claude.script(Raw(ANTHROPIC_STREAM))
    seen = []
    with pytest.raises(LLMError) as failed:
        async for event in agent_loop(claude_request(claude)):
            seen.append(event)
    assert failed.value.code == "upstream_unavailable" and "cut off" in failed.value.message
    assert [e.text for e in seen if isinstance(e, TextDelta)] == ["Hi"]


async def test_an_openai_stream_that_ends_without_a_finish_reason_is_cut_off(gpt):
    chunk = {"id": "c", "object": "chat.completion.chunk", "created": 1, "model": "m",
             "choices": [{"index": 0, "delta": {"content": "Hi"}, "finish_reason": None}]}  # fmt: skip
    gpt.script(Raw(sse((None, chunk)) + "data: [DONE]\n\n"))
    error = await failure_of(gpt_request(gpt))
    assert error.code == "upstream_unavailable" and "cut off" in error.message


async def test_a_hostile_anthropic_usage_neither_lowers_nor_overflows_the_counts(claude):
    claude.script(Reply(text=["Hi"], input_tokens=-1_000_000, output_tokens=10**15, cache_read_input_tokens=-5))
    events = [event async for event in agent_loop(claude_request(claude))]
    usage = events[-1].usage.as_dict()
    assert usage == {"input_tokens": 0, "output_tokens": MAX_REPORTED_TOKENS, "cache_read_input_tokens": 0,
                     "cache_creation_input_tokens": 0}  # fmt: skip


async def test_a_hostile_openai_usage_neither_lowers_nor_overflows_the_counts(gpt):
    gpt.script(Chunks(text=["Hi"], prompt_tokens=-1_000_000, completion_tokens=10**15, cached_tokens=10**12))
    events = [event async for event in agent_loop(gpt_request(gpt))]
    usage = events[-1].usage.as_dict()
    assert usage == {"input_tokens": 0, "output_tokens": MAX_REPORTED_TOKENS, "cache_read_input_tokens": 0,
                     "cache_creation_input_tokens": 0}  # fmt: skip


async def test_a_long_model_name_and_stop_reason_are_cut_to_what_is_stored(claude):
    claude.script(Reply(text=["Hi"], model="m" * 10_000, stop_reason="s" * 10_000))
    events = [event async for event in agent_loop(claude_request(claude))]
    finished = events[-2]
    assert len(finished.model) == 255 and len(finished.stop_reason) == 64


async def test_an_anthropic_answer_is_stored_as_the_api_takes_it_back(claude):
    """Read as the JSON its events are (no SDK models): thinking keeps its signature, citations and a
    tool call's input (in pieces) are put together, blocks of kinds we don't know are kept as sent, nulls
    are left out, and the usage of message_start survives a message_delta that leaves counts out."""
    citation = {"type": "char_location", "cited_text": "Paris", "document_index": 0, "document_title": None,
                "start_char_index": 0, "end_char_index": 5}  # fmt: skip
    search = {"type": "server_tool_use", "id": "srv_1", "name": "web_search", "input": {"query": "capital"}}
    start = {**MESSAGE, "content": [], "stop_reason": None,
             "usage": {"input_tokens": 30, "output_tokens": 1, "cache_read_input_tokens": 7}}  # fmt: skip
    stream = sse(
        ("message_start", {"type": "message_start", "message": start}),
        ("ping", {"type": "ping"}),
        ("content_block_start", {"type": "content_block_start", "index": 0,
                                 "content_block": {"type": "thinking", "thinking": "", "signature": ""}}),
        ("content_block_delta", {"type": "content_block_delta", "index": 0, "delta": {"type": "thinking_delta", "thinking": "Hm."}}),
        ("content_block_delta", {"type": "content_block_delta", "index": 0, "delta": {"type": "signature_delta", "signature": "sig-1"}}),
        ("content_block_stop", {"type": "content_block_stop", "index": 0}),
        ("content_block_start", {"type": "content_block_start", "index": 1, "content_block": search}),
        ("content_block_stop", {"type": "content_block_stop", "index": 1}),
        ("content_block_start", {"type": "content_block_start", "index": 2,
                                 "content_block": {"type": "text", "text": "", "citations": None}}),
        ("content_block_delta", {"type": "content_block_delta", "index": 2, "delta": {"type": "text_delta", "text": "It is "}}),
        ("content_block_delta", {"type": "content_block_delta", "index": 2, "delta": {"type": "citations_delta", "citation": citation}}),
        ("content_block_delta", {"type": "content_block_delta", "index": 2, "delta": {"type": "text_delta", "text": "Paris."}}),
        ("content_block_stop", {"type": "content_block_stop", "index": 2}),
        ("content_block_start", {"type": "content_block_start", "index": 3,
                                 "content_block": {"type": "tool_use", "id": "toolu_1", "name": "echo", "input": {}}}),
        ("content_block_delta", {"type": "content_block_delta", "index": 3, "delta": {"type": "input_json_delta", "partial_json": '{"say": '}}),
        ("content_block_delta", {"type": "content_block_delta", "index": 3, "delta": {"type": "input_json_delta", "partial_json": '"hi"}'}}),
        ("content_block_stop", {"type": "content_block_stop", "index": 3}),
        ("message_delta", {"type": "message_delta", "delta": {"stop_reason": "tool_use", "stop_sequence": None},
                           "usage": {"output_tokens": 42, "input_tokens": None}}),
        ("message_stop", {"type": "message_stop"}),
    )  # fmt: skip
    claude.script(Raw(stream))
    model = ModelSettings(model="claude-test-1", api_key="sk-test", base_url=claude.base_url, max_tokens=64)
    events = [event async for event in stream_call(model, ModelCall(messages=[{"role": "user", "content": "Hi"}]))]

    assert [e.text for e in events if isinstance(e, TextDelta)] == ["It is ", "Paris."]
    assert [e.text for e in events if isinstance(e, ThinkingDelta)] == ["Hm."]
    [requested] = [e for e in events if isinstance(e, ToolUseRequested)]
    assert (requested.call.id, requested.call.name, requested.call.input) == ("toolu_1", "echo", {"say": "hi"})
    finished = next(e for e in events if isinstance(e, ModelCallFinished))
    assert finished.content == [
        {"type": "thinking", "thinking": "Hm.", "signature": "sig-1"},
        search,
        {"type": "text", "text": "It is Paris.", "citations": [{k: v for k, v in citation.items() if v is not None}]},
        {"type": "tool_use", "id": "toolu_1", "name": "echo", "input": {"say": "hi"}},
    ]
    assert finished.stop_reason == "tool_use" and finished.model == "claude-test-1"
    usage = [e.usage for e in events if isinstance(e, UsageReported)][-1]
    assert (usage.input_tokens, usage.output_tokens, usage.cache_read_input_tokens) == (30, 42, 7)
