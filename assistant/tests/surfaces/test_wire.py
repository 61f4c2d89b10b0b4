"""The wire formats, as pure translations of turn events (the SDK's own readers check them in
test_vercel_streams.py)."""

from __future__ import annotations

import json

from assistant import wire
from assistant.wire.data_stream_v4 import DataStreamEncoder
from assistant.wire.platform_sse import PlatformSseEncoder
from assistant.wire.ui_message_v5 import UIMessageStreamEncoder

USAGE = {"input_tokens": 30, "output_tokens": 9, "cache_read_input_tokens": 4, "cache_creation_input_tokens": 2}


def frames(*events: tuple[str, dict]) -> list[dict]:
    return [{"type": kind, "session_id": 7, "seq": seq, **data} for seq, (kind, data) in enumerate(events, start=3)]


TOOL_TURN = frames(
    ("session", {"agent": "helper", "title": "t", "user_message": {"seq": 1, "text": "hi"}}),
    ("thinking_delta", {"text": "Hmm."}),
    ("text_delta", {"text": "Let me "}),
    ("text_delta", {"text": "look."}),
    ("tool_use", {"id": "toolu_1", "name": "lookup", "input": {"word": "a"}}),
    ("tool_use", {"id": "toolu_2", "name": "lookup", "input": {"word": "fail"}}),
    ("tool_result", {"id": "toolu_1", "is_error": False, "output": "a means hello"}),
    ("tool_result", {"id": "toolu_2", "is_error": True, "output": "no such word"}),
    ("text_delta", {"text": "Done."}),
    ("result", {"status": "complete", "stop_reason": "end_turn", "usage": USAGE, "turns": 2, "duration_ms": 5}),
)


def v5_chunks(events: list[dict]) -> list:
    encoder = UIMessageStreamEncoder()
    raw = b"".join(encoder.encode(frame) for frame in events).decode()
    blocks = [block for block in raw.split("\n\n") if block]
    assert all(block.startswith("data: ") for block in blocks)
    return [block[len("data: "):] if block == "data: [DONE]" else json.loads(block[len("data: "):]) for block in blocks]


def v4_lines(events: list[dict]) -> list[tuple[str, object]]:
    encoder = DataStreamEncoder()
    raw = b"".join(encoder.encode(frame) for frame in events).decode()
    assert raw.endswith("\n")
    return [(line[0], json.loads(line[2:])) for line in raw.split("\n")[:-1]]  # as the SDK splits


def test_platform_sse_sends_each_event_with_its_seq_as_id():
    encoded = PlatformSseEncoder().encode(TOOL_TURN[2])
    assert encoded == b'id: 5\ndata: {"type": "text_delta", "session_id": 7, "seq": 5, "text": "Let me "}\n\n'
    assert PlatformSseEncoder().keepalive().startswith(b":")


def test_platform_sse_keeps_newlines_and_unicode_inside_one_data_line():
    encoded = PlatformSseEncoder().encode(frames(("text_delta", {"text": "a\n\nb ü"}))[0]).decode()
    assert encoded.count("\n") == 3 and "ü" in encoded  # id, data, blank line


def test_v5_opens_and_closes_parts_and_steps_in_order():
    assert v5_chunks(TOOL_TURN) == [
        {"type": "start", "messageId": "session-7-3", "messageMetadata": {"sessionId": 7, "agent": "helper"}},
        {"type": "start-step"},
        {"type": "reasoning-start", "id": "reasoning-1"},
        {"type": "reasoning-delta", "id": "reasoning-1", "delta": "Hmm."},
        {"type": "reasoning-end", "id": "reasoning-1"},
        {"type": "text-start", "id": "text-2"},
        {"type": "text-delta", "id": "text-2", "delta": "Let me "},
        {"type": "text-delta", "id": "text-2", "delta": "look."},
        {"type": "text-end", "id": "text-2"},
        {"type": "tool-input-available", "toolCallId": "toolu_1", "toolName": "lookup", "input": {"word": "a"}, "dynamic": True},
        {"type": "tool-input-available", "toolCallId": "toolu_2", "toolName": "lookup", "input": {"word": "fail"}, "dynamic": True},
        {"type": "tool-output-available", "toolCallId": "toolu_1", "output": "a means hello", "dynamic": True},
        {"type": "tool-output-error", "toolCallId": "toolu_2", "errorText": "no such word", "dynamic": True},
        {"type": "finish-step"},
        {"type": "start-step"},
        {"type": "text-start", "id": "text-3"},
        {"type": "text-delta", "id": "text-3", "delta": "Done."},
        {"type": "text-end", "id": "text-3"},
        {"type": "finish-step"},
        {"type": "finish", "finishReason": "stop", "messageMetadata": {
            "sessionId": 7, "status": "complete", "stopReason": "end_turn",
            "usage": {"inputTokens": 30, "outputTokens": 9, "totalTokens": 39, "cachedInputTokens": 4}}},
        "[DONE]",
    ]  # fmt: skip


def test_v5_marks_a_stopped_turn_aborted_and_an_error_as_error():
    stopped = v5_chunks(frames(("session", {"agent": "a"}), ("text_delta", {"text": "x"}),
                               ("result", {"status": "stopped", "stop_reason": "stopped", "usage": USAGE, "turns": 1})))  # fmt: skip
    assert [c if isinstance(c, str) else c["type"] for c in stopped[-5:]] == ["text-end", "finish-step", "abort", "finish", "[DONE]"]
    assert stopped[-2]["finishReason"] == "other"
    failed = v5_chunks(frames(("session", {"agent": "a"}), ("text_delta", {"text": "x"}),
                              ("error", {"code": "rate_limited", "message": "Too many requests"})))  # fmt: skip
    assert failed[-4:] == [
        {"type": "finish-step"}, {"type": "error", "errorText": "Too many requests"},
        {"type": "finish", "finishReason": "error", "messageMetadata": {"sessionId": 7, "errorCode": "rate_limited"}}, "[DONE]",
    ]  # fmt: skip


def test_v4_writes_code_json_lines_with_steps():
    assert v4_lines(TOOL_TURN) == [
        ("f", {"messageId": "session-7-3"}),
        ("g", "Hmm."),
        ("0", "Let me "),
        ("0", "look."),
        ("9", {"toolCallId": "toolu_1", "toolName": "lookup", "args": {"word": "a"}}),
        ("9", {"toolCallId": "toolu_2", "toolName": "lookup", "args": {"word": "fail"}}),
        ("a", {"toolCallId": "toolu_1", "result": "a means hello"}),
        ("a", {"toolCallId": "toolu_2", "result": {"error": "no such word"}}),
        ("e", {"finishReason": "tool-calls", "isContinued": False}),
        ("f", {"messageId": "session-7-3"}),
        ("0", "Done."),
        ("e", {"finishReason": "stop", "isContinued": False}),
        ("d", {"finishReason": "stop", "usage": {"promptTokens": 30, "completionTokens": 9}}),
    ]


def test_v4_gives_a_single_calls_step_the_turns_usage():
    lines = v4_lines(frames(("session", {"agent": "a"}), ("text_delta", {"text": "Hi"}),
                            ("result", {"status": "complete", "stop_reason": "max_tokens", "usage": USAGE, "turns": 1})))  # fmt: skip
    usage = {"promptTokens": 30, "completionTokens": 9}
    assert lines[-2:] == [("e", {"finishReason": "length", "isContinued": False, "usage": usage}),
                          ("d", {"finishReason": "length", "usage": usage})]  # fmt: skip


def test_v4_reports_an_error_as_an_error_part():
    lines = v4_lines(frames(("session", {"agent": "a"}), ("error", {"code": "upstream_error", "message": "Overloaded"})))
    assert lines == [("3", "Overloaded"), ("d", {"finishReason": "error"})]


def test_text_with_quotes_newlines_and_unicode_survives_every_format():
    text = 'say "hi"\nthen </script> ü \u2028 \x85 \r'
    events = frames(("session", {"agent": "a"}), ("text_delta", {"text": text}),
                    ("result", {"status": "complete", "stop_reason": "end_turn", "usage": USAGE, "turns": 1}))  # fmt: skip
    assert [c["delta"] for c in v5_chunks(events) if isinstance(c, dict) and c["type"] == "text-delta"] == [text]
    assert [value for code, value in v4_lines(events) if code == "0"] == [text]
    for encoder in (PlatformSseEncoder(), UIMessageStreamEncoder(), DataStreamEncoder()):
        encoded = b"".join(encoder.encode(frame) for frame in events).decode()
        assert len(encoded.splitlines()) == encoded.count("\n"), "no line break but the format's own"


def test_every_protocol_has_an_encoder():
    assert wire.PROTOCOLS == ("sse", "v5", "v4")
    assert isinstance(wire.encoder_for("v5"), UIMessageStreamEncoder)
