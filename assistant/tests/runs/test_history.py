from dataclasses import dataclass, field

from assistant.runs.history import api_messages


@dataclass
class M:
    role: str
    content: list = field(default_factory=list)
    status: str = "complete"


def text(t):
    return {"type": "text", "text": t}


def test_it_keeps_a_plain_conversation_as_it_is():
    stored = [M("user", [text("hi")]), M("assistant", [text("hello")]), M("user", [text("more")])]
    assert api_messages(stored) == [
        {"role": "user", "content": [text("hi")]},
        {"role": "assistant", "content": [text("hello")]},
        {"role": "user", "content": [text("more")]},
    ]


def test_it_keeps_the_text_of_a_stopped_answer_but_not_its_unfinished_tool_call():
    tool = {"type": "tool_use", "id": "t1", "name": "x", "input": {}}
    stored = [M("user", [text("hi")]), M("assistant", [text("half"), tool], status="stopped"), M("user", [text("go on")])]
    assert api_messages(stored)[1] == {"role": "assistant", "content": [text("half")]}


def test_it_leaves_out_streaming_and_empty_failed_answers_and_merges_what_is_left():
    stored = [
        M("user", [text("one")]),
        M("assistant", [], status="error"),
        M("user", [text("two")]),
        M("assistant", [text("partial")], status="streaming"),
    ]
    assert api_messages(stored) == [{"role": "user", "content": [text("one"), text("two")]}]


def test_tool_results_follow_their_tool_use():
    tool = {"type": "tool_use", "id": "t1", "name": "x", "input": {}}
    result = {"type": "tool_result", "tool_use_id": "t1", "content": "ok", "is_error": False}
    stored = [M("user", [text("do it")]), M("assistant", [tool]), M("user", [result]), M("assistant", [text("done")])]
    assert [m["role"] for m in api_messages(stored)] == ["user", "assistant", "user", "assistant"]
    assert api_messages(stored)[2]["content"] == [result]
