"""The neutral tool choice, parallel-calls switch and response format in each provider's terms (the
request each adapter sends; the served tests check they reach the fake providers)."""

from __future__ import annotations

import pytest

from assistant.llm import anthropic_messages, openai_chat
from assistant.llm.types import ModelCall, ModelSettings, ResponseFormat, ToolChoice

TOOLS = [{"name": "get_weather", "description": "", "input_schema": {"type": "object"}}]
MESSAGES = [{"role": "user", "content": "Hi"}]


@pytest.mark.parametrize(
    ("choice", "parallel", "anthropic", "openai"),
    [
        (None, None, None, None),
        (ToolChoice("auto"), None, {"type": "auto"}, "auto"),
        (ToolChoice("none"), False, {"type": "none"}, "none"),
        (ToolChoice("required"), None, {"type": "any"}, "required"),
        (ToolChoice("tool", "get_weather"), False, {"type": "tool", "name": "get_weather", "disable_parallel_tool_use": True},
         {"type": "function", "function": {"name": "get_weather"}}),
        (None, False, {"type": "auto", "disable_parallel_tool_use": True}, None),
    ],
)  # fmt: skip
def test_tool_choice_and_parallel_calls_in_each_providers_terms(choice, parallel, anthropic, openai):
    call = ModelCall(messages=MESSAGES, tools=TOOLS, tool_choice=choice, parallel_tool_calls=parallel)
    sent = anthropic_messages.request_params(ModelSettings(model="claude", api_key="k"), call)
    assert sent.get("tool_choice") == anthropic
    sent = openai_chat.request_params(ModelSettings(model="gpt", api_key="k", provider="openai"), call)
    assert sent.get("tool_choice") == openai
    assert sent.get("parallel_tool_calls") == parallel


def test_without_tools_no_tool_choice_is_sent():
    call = ModelCall(messages=MESSAGES, tool_choice=ToolChoice("required"), parallel_tool_calls=False)
    assert "tool_choice" not in anthropic_messages.request_params(ModelSettings(model="c", api_key="k"), call)
    sent = openai_chat.request_params(ModelSettings(model="g", api_key="k", provider="openai"), call)
    assert "tool_choice" not in sent and "parallel_tool_calls" not in sent


def test_a_json_schema_answer_is_a_forced_tool_on_anthropic_and_response_format_on_chat_completions():
    schema = {"type": "object", "properties": {"city": {"type": "string"}}}
    call = ModelCall(messages=MESSAGES, response_format=ResponseFormat("json_schema", name="w", schema=schema, strict=True))
    sent = anthropic_messages.request_params(ModelSettings(model="c", api_key="k"), call)
    assert sent["tools"] == [{"name": "structured_answer", "description": sent["tools"][0]["description"], "input_schema": schema}]
    assert sent["tool_choice"] == {"type": "tool", "name": "structured_answer", "disable_parallel_tool_use": True}
    sent = openai_chat.request_params(ModelSettings(model="g", api_key="k", provider="openai"), call)
    assert sent["response_format"] == {"type": "json_schema", "json_schema": {"name": "w", "schema": schema, "strict": True}}
    assert "tools" not in sent
