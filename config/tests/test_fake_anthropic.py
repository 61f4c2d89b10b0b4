"""The fake Messages API must be faithful enough that the real SDK parses it as the real thing."""

from __future__ import annotations

import anthropic
import pytest

from config.testing.fake_anthropic import HttpError, Reply, ToolUse, fake_anthropic_server


@pytest.fixture
def fake():
    with fake_anthropic_server() as server:
        yield server


def client_for(fake) -> anthropic.Anthropic:
    return anthropic.Anthropic(api_key="sk-test", base_url=fake.base_url, max_retries=0)


def test_the_sdk_streams_text_thinking_and_tool_use_from_it(fake):
    tool = ToolUse("read_file", {"path": "notes.txt"})
    fake.script(Reply(text=["Hel", "lo"], thinking=["hmm"], tool_uses=[tool], stop_reason="tool_use", output_tokens=7))
    with client_for(fake).messages.stream(model="m", max_tokens=10, messages=[{"role": "user", "content": "hi"}]) as stream:
        deltas = [event.delta.text for event in stream if event.type == "content_block_delta" and event.delta.type == "text_delta"]
        final = stream.get_final_message()
    assert deltas == ["Hel", "lo"]
    assert [block.type for block in final.content] == ["thinking", "text", "tool_use"]
    assert final.content[1].text == "Hello"
    assert final.content[2].input == {"path": "notes.txt"} and final.content[2].id == tool.id
    assert final.stop_reason == "tool_use" and final.usage.output_tokens == 7
    sent = fake.requests[0]
    assert sent.headers.get("x-api-key", sent.headers.get("authorization")) in {"sk-test", "Bearer sk-test"}
    assert sent.body["stream"] is True
    assert sent.body["messages"] == [{"role": "user", "content": "hi"}]


def test_the_sdk_raises_the_right_errors_for_http_failures(fake):
    fake.script(HttpError(429, "rate_limit_error", "slow down"), HttpError(529, "overloaded_error", "Overloaded"))
    with pytest.raises(anthropic.RateLimitError):
        client_for(fake).messages.create(model="m", max_tokens=10, messages=[{"role": "user", "content": "hi"}])
    with pytest.raises(anthropic.APIStatusError) as overloaded:
        client_for(fake).messages.create(model="m", max_tokens=10, messages=[{"role": "user", "content": "hi"}])
    assert overloaded.value.status_code == 529


def test_a_mid_stream_error_event_surfaces_after_the_first_deltas(fake):
    fake.script(Reply(text=["a", "b", "c"], error_after=2))
    received = []
    with pytest.raises(anthropic.APIStatusError) as error:
        with client_for(fake).messages.stream(model="m", max_tokens=10, messages=[{"role": "user", "content": "x"}]) as stream:
            for text in stream.text_stream:
                received.append(text)
    assert received == ["a", "b"]
    assert "Overloaded" in str(error.value)
