"""The OpenAI wire format, mapped to ours: messages to stored blocks, stop reasons to finish reasons,
usage, and our error codes to OpenAI's statuses."""

from __future__ import annotations

import base64

import pytest

from assistant.surfaces.openai import format as wire
from assistant.surfaces.openai.images import MAX_IMAGE_BYTES


def parse(messages, **options) -> wire.ChatRequest:
    return wire.parse_chat_request({"model": "helper", "messages": messages, **options})


def test_system_and_developer_messages_become_extra_instructions_in_order():
    chat = parse(
        [
            {"role": "system", "content": "One."},
            {"role": "user", "content": "Hi"},
            {"role": "developer", "content": [{"type": "text", "text": "Two."}]},
            {"role": "user", "content": "Again"},
        ]
    )
    assert chat.system == "One.\n\nTwo."
    assert chat.prompt == "Again"
    assert chat.history == [("user", [{"type": "text", "text": "Hi"}])]


def test_an_unanswered_tool_call_is_left_out_of_the_history():
    chat = parse(
        [
            {"role": "user", "content": "Read two files"},
            {"role": "assistant", "content": "Reading.", "tool_calls": [
                {"id": "a", "type": "function", "function": {"name": "read", "arguments": "{}"}},
                {"id": "b", "type": "function", "function": {"name": "read", "arguments": ""}},
            ]},
            {"role": "tool", "tool_call_id": "a", "content": "A"},
            {"role": "user", "content": "Thanks"},
        ]
    )  # fmt: skip
    assistant = chat.history[1][1]
    assert assistant == [{"type": "text", "text": "Reading."}, {"type": "tool_use", "id": "a", "name": "read", "input": {}}]
    assert chat.history[2] == ("user", [{"type": "tool_result", "tool_use_id": "a", "content": "A", "is_error": False}])


@pytest.mark.parametrize("arguments", ["[1]", "{not json", "1"])
def test_tool_call_arguments_must_be_a_json_object(arguments):
    with pytest.raises(wire.OpenAIError) as refused:
        parse([
            {"role": "assistant", "tool_calls": [{"id": "a", "function": {"name": "f", "arguments": arguments}}]},
            {"role": "user", "content": "Hi"},
        ])  # fmt: skip
    assert refused.value.status == 400 and refused.value.param == "messages[0].tool_calls[0].function.arguments"


def test_options_are_read():
    chat = parse([{"role": "user", "content": "Hi"}], stream=True, stream_options={"include_usage": True},
                 max_tokens=100, max_completion_tokens=40, stop="END", user="u1", temperature=0.3, tools=[])  # fmt: skip
    assert (chat.stream, chat.include_usage, chat.max_tokens, chat.stop, chat.user) == (True, True, 40, ("END",), "u1")


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ([], None),
        ({"model": "x", "messages": [{"role": "user", "content": "  "}]}, "messages[0].content"),
        ({"model": "x", "messages": [{"role": "user", "content": "Hi"}], "stream": "yes"}, "stream"),
        ({"model": "x", "messages": [{"role": "user", "content": "Hi"}], "max_tokens": True}, "max_tokens"),
        ({"model": "x", "messages": [{"role": "user", "content": "Hi"}], "stop": [""]}, "stop"),
        ({"model": "x", "messages": [{"role": "user", "content": "Hi"}], "user": 5}, "user"),
        ({"model": "x", "messages": ["Hi"]}, "messages[0]"),
    ],
)
def test_bad_bodies_name_their_param(body, param):
    with pytest.raises(wire.OpenAIError) as refused:
        wire.parse_chat_request(body)
    assert refused.value.status == 400 and refused.value.param == param
    assert refused.value.body()["error"]["type"] == "invalid_request_error"


def test_json_that_is_too_deep_or_carries_nul_is_a_400():
    with pytest.raises(wire.OpenAIError):
        wire.parse_body(b"[" * 100_000 + b"]" * 100_000)
    with pytest.raises(wire.OpenAIError) as refused:
        wire.parse_body(b'{"model": "a\\u0000"}')
    assert refused.value.param == "model"


@pytest.mark.parametrize(
    ("stop_reason", "finish"),
    [("end_turn", "stop"), ("stop_sequence", "stop"), ("max_tokens", "length"), ("max_turns", "length"),
     ("tool_use", "stop"), ("refusal", "content_filter"), (None, "stop"), ("stopped", "stop")],
)  # fmt: skip
def test_stop_reasons_map_to_finish_reasons(stop_reason, finish):
    assert wire.finish_reason(stop_reason) == finish


def test_the_finish_reason_is_tool_calls_only_when_client_tools_are_called():
    # A server tool call the turn ran isn't the client's to run: only handed-over calls are tool_calls.
    assert wire.finish_reason("tool_use", [wire.ToolCall("call_1", "lookup", {})]) == "tool_calls"


def test_usage_counts_cached_input_as_prompt_tokens():
    usage = {"input_tokens": 10, "output_tokens": 4, "cache_read_input_tokens": 3, "cache_creation_input_tokens": 2}
    assert wire.openai_usage(usage) == {
        "prompt_tokens": 15, "completion_tokens": 4, "total_tokens": 19, "prompt_tokens_details": {"cached_tokens": 3},
    }  # fmt: skip


@pytest.mark.parametrize(
    ("code", "status"),
    [("too_many_turns", 429), ("rate_limited", 429), ("upstream_timeout", 504), ("upstream_error", 502),
     ("upstream_unavailable", 502), ("upstream_auth", 502), ("egress_refused", 502), ("overloaded", 503),
     ("not_configured", 503), ("not_found", 404), ("invalid", 400), ("something_new", 500)],
)  # fmt: skip
def test_our_error_codes_map_to_statuses(code, status):
    error = wire.OpenAIError.from_code(code, "message")
    assert error.status == status
    assert set(error.body()["error"]) == {"message", "type", "code", "param"}


# --- client tools ----------------------------------------------------------------------------------

WEATHER = {"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object"}}}


def test_the_results_of_the_clients_tools_are_what_the_turn_answers_and_continue_the_conversations_digest():
    opening = parse([{"role": "user", "content": "Weather in Paris and Oslo?"}], tools=[WEATHER])
    calls = [wire.ToolCall("call_1", "get_weather", {"city": "Paris"}), wire.ToolCall("call_2", "get_weather", {"city": "Oslo"})]
    after_first = wire.conversation_digest("helper", opening.conversation("Checking.", calls))

    # The client echoes the answer (as the SDK gives it) and sends both results.
    answer = wire.completion(completion_id="c", created=0, model="helper", text="Checking.", stop_reason="tool_use",
                             usage={}, calls=calls)["choices"][0]["message"]  # fmt: skip
    follow_up = parse([
        {"role": "user", "content": "Weather in Paris and Oslo?"}, answer,
        {"role": "tool", "tool_call_id": "call_1", "content": "Sunny"},
        {"role": "tool", "tool_call_id": "call_2", "content": [{"type": "text", "text": "Snow"}]},
    ], tools=[WEATHER])  # fmt: skip

    assert wire.conversation_digest("helper", follow_up.history) == after_first
    assert follow_up.prompt == ""
    assert follow_up.prompt_blocks == [
        {"type": "tool_result", "tool_use_id": "call_1", "content": "Sunny", "is_error": False},
        {"type": "tool_result", "tool_use_id": "call_2", "content": "Snow", "is_error": False},
    ]


def test_tool_choice_response_format_and_parallel_calls_are_read_in_neutral_form():
    chat = parse([{"role": "user", "content": "Hi"}], tools=[WEATHER], parallel_tool_calls=False,
                 tool_choice={"type": "function", "function": {"name": "get_weather"}},
                 response_format={"type": "json_schema", "json_schema": {"name": "w", "strict": True,
                                                                         "schema": {"type": "object"}}})  # fmt: skip
    assert chat.tools == [{"name": "get_weather", "description": "", "input_schema": {"type": "object"}}]
    assert chat.tool_choice == wire.ToolChoice("tool", "get_weather")
    assert chat.parallel_tool_calls is False
    assert chat.response_format == wire.ResponseFormat("json_schema", name="w", schema={"type": "object"}, strict=True)
    assert parse([{"role": "user", "content": "Hi"}], response_format={"type": "text"}).response_format is None


def test_an_image_only_user_message_is_a_prompt_and_images_keep_their_place_among_the_text():
    png = "data:image/png;base64,iVBORw0KGgoAAAAA"
    chat = parse([{"role": "user", "content": [
        {"type": "image_url", "image_url": {"url": png}}, {"type": "text", "text": "this?"},
    ]}])  # fmt: skip
    assert chat.prompt == "this?"
    assert [b["type"] for b in chat.prompt_blocks] == ["image", "text"]
    only_image = parse([{"role": "user", "content": [{"type": "image_url", "image_url": {"url": png}}]}])
    assert only_image.prompt == "" and only_image.prompt_blocks[0]["source"]["media_type"] == "image/png"


def test_an_image_of_just_over_the_limit_is_refused_and_one_at_the_limit_taken():
    def with_image(size: int):
        data = base64.b64encode(b"\x89PNG\r\n\x1a\n" + b"\x00" * (size - 8)).decode()
        return parse([{"role": "user", "content": [{"type": "image_url", "image_url": {"url": f"data:image/png;base64,{data}"}}]}])

    assert with_image(MAX_IMAGE_BYTES).prompt_blocks[0]["type"] == "image"
    with pytest.raises(wire.OpenAIError) as refused:
        with_image(MAX_IMAGE_BYTES + 1)
    assert refused.value.param == "messages[0].content[0].image_url.url"
