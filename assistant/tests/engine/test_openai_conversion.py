"""The stored block format as Chat Completions messages, and answers of compatible servers that differ in
details (a broken arguments string, an id Anthropic wouldn't take, tool calls ended with "stop")."""

from __future__ import annotations

import pytest

from assistant.engine import LoopRequest, ModelCallFinished, ModelSettings, agent_loop
from assistant.llm.openai_chat import chat_messages, uses_max_completion_tokens
from config.testing.fake_openai import Chunks, FunctionCall, fake_openai_server


def test_tool_results_become_tool_messages_before_the_users_words_and_errors_say_so():
    stored = [
        {"role": "user", "content": [{"type": "text", "text": "Go"}]},
        {"role": "assistant", "content": [{"type": "thinking", "thinking": "hm", "signature": "s"},
                                          {"type": "tool_use", "id": "t1", "name": "a", "input": {"x": 1}},
                                          {"type": "tool_use", "id": "t2", "name": "b", "input": {}}]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t1", "content": "fine", "is_error": False},
                                     {"type": "tool_result", "tool_use_id": "t2", "is_error": True,
                                      "content": [{"type": "text", "text": "no such file"}]},
                                     {"type": "text", "text": "Well?"}]},
    ]  # fmt: skip
    assert chat_messages(stored) == [
        {"role": "user", "content": "Go"},
        {"role": "assistant", "content": None, "tool_calls": [
            {"id": "t1", "type": "function", "function": {"name": "a", "arguments": '{"x": 1}'}},
            {"id": "t2", "type": "function", "function": {"name": "b", "arguments": "{}"}}]},
        {"role": "tool", "tool_call_id": "t1", "content": "fine"},
        {"role": "tool", "tool_call_id": "t2", "content": "Error: no such file"},
        {"role": "user", "content": "Well?"},
    ]  # fmt: skip


def test_a_tool_call_nobody_answered_is_left_out_and_an_assistant_message_of_only_thinking_too():
    stored = [
        {"role": "user", "content": "Go"},
        {"role": "assistant", "content": [{"type": "text", "text": "Trying."},
                                          {"type": "tool_use", "id": "lost", "name": "a", "input": {}}]},
        {"role": "user", "content": [{"type": "text", "text": "Stop that."}]},
        {"role": "assistant", "content": [{"type": "thinking", "thinking": "hm", "signature": "s"}]},
    ]  # fmt: skip
    assert chat_messages(stored, "Sys.") == [
        {"role": "system", "content": "Sys."},
        {"role": "user", "content": "Go"},
        {"role": "assistant", "content": "Trying."},
        {"role": "user", "content": "Stop that."},
    ]


@pytest.mark.parametrize(
    ("base_url", "expected"),
    [(None, True), ("https://api.openai.com/v1", True), ("http://127.0.0.1:11434/v1", False),
     ("https://myorg.openai.azure.com/openai/v1", False)],
)  # fmt: skip
def test_only_openais_own_api_gets_max_completion_tokens(base_url, expected):
    assert uses_max_completion_tokens(base_url) is expected


async def test_answers_of_compatible_servers_that_differ_in_details_still_replay_to_anthropic(settings):
    settings.OPENAI_MAX_RETRIES = 0
    odd_id = FunctionCall("lookup", {"word": "x"}, id="call:1/with spaces")
    with fake_openai_server() as fake:
        fake.script(Chunks(tool_calls=[odd_id], finish_reason="stop"))
        model = ModelSettings(model="m", api_key="k", base_url=fake.base_url, provider="openai")
        events = [e async for e in agent_loop(LoopRequest(model=model, messages=[{"role": "user", "content": "x"}]))]
    finished = next(e for e in events if isinstance(e, ModelCallFinished))
    assert finished.stop_reason == "tool_use", "a tool call ended with 'stop' is still a tool call"
    [block] = finished.content
    assert block["type"] == "tool_use" and block["input"] == {"word": "x"}
    assert block["id"] != odd_id.id and block["id"].startswith("call_") and " " not in block["id"]


async def test_broken_arguments_reach_the_tool_as_unparsed_text_instead_of_failing_the_turn(settings):
    settings.OPENAI_MAX_RETRIES = 0
    with fake_openai_server() as fake:
        fake.script(Chunks(tool_calls=[FunctionCall("lookup", {}, raw_arguments='{"word": "x')]))
        model = ModelSettings(model="m", api_key="k", base_url=fake.base_url, provider="openai")
        events = [e async for e in agent_loop(LoopRequest(model=model, messages=[{"role": "user", "content": "x"}]))]
    finished = next(e for e in events if isinstance(e, ModelCallFinished))
    assert finished.stop_reason == "tool_use"
    assert finished.content[0]["input"] == {"_unparsed_arguments": '{"word": "x'}
