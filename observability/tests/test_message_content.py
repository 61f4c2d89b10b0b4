"""Prompt and answer text go into the `chat <model>` span only with
OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT=true (settings.OTEL_CAPTURE_MESSAGE_CONTENT): a real model
call of the engine's loop to the fake model, with tracing on in this process and the SDK's spans kept in
memory instead of exported (observability.otel's own code opens them). `fake` is the fake model (conftest)."""

from __future__ import annotations

import json

import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from assistant.engine import LoopFinished, LoopRequest, ModelSettings, agent_loop
from config.testing.fake_anthropic import Reply
from observability import otel, tracing

CONTENT_KEYS = {"gen_ai.input.messages", "gen_ai.system_instructions", "gen_ai.output.messages"}
PROMPT = "A private question about tulips"
SYSTEM = "You know gardens."
ANSWER = "Tulips bloom in April."


@pytest.fixture
def finished_spans(monkeypatch):
    """Tracing on, as observability.tracing.configure() turns it on, with a provider whose spans stay here."""
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    monkeypatch.setattr(otel, "_tracer", provider.get_tracer("conduit"))
    monkeypatch.setattr(tracing, "_otel", otel)
    monkeypatch.setattr(tracing, "ENABLED", True)
    yield exporter.get_finished_spans
    provider.shutdown()


async def chat_span_of_a_model_call(fake, finished_spans):
    fake.script(Reply(text=[ANSWER]))
    model = ModelSettings(model="claude-test-1", api_key="sk-test", base_url=fake.base_url, max_tokens=64)
    request = LoopRequest(model=model, messages=[{"role": "user", "content": PROMPT}], system=SYSTEM)
    events = [event async for event in agent_loop(request)]
    assert isinstance(events[-1], LoopFinished)
    [span] = finished_spans()
    assert span.name == "chat claude-test-1"
    # The span is the one whose context the provider got.
    context = span.get_span_context()
    sent = f"00-{context.trace_id:032x}-{context.span_id:016x}-{context.trace_flags:02x}"
    assert fake.requests[0].headers["traceparent"] == sent
    return span


async def test_with_capture_on_the_chat_span_carries_the_prompt_and_the_answer(settings, fake, finished_spans):
    settings.OTEL_CAPTURE_MESSAGE_CONTENT = True
    span = await chat_span_of_a_model_call(fake, finished_spans)
    assert json.loads(span.attributes["gen_ai.input.messages"]) == [{"role": "user", "content": PROMPT}]
    assert json.loads(span.attributes["gen_ai.system_instructions"]) == [{"type": "text", "content": SYSTEM}]
    [output] = json.loads(span.attributes["gen_ai.output.messages"])
    assert output["role"] == "assistant" and output["content"] == [{"type": "text", "text": ANSWER}]
    assert list(span.attributes["gen_ai.response.finish_reasons"]) == ["end_turn"]  # the rest is still there


async def test_without_capture_the_chat_span_has_no_message_text(settings, fake, finished_spans):
    settings.OTEL_CAPTURE_MESSAGE_CONTENT = False
    span = await chat_span_of_a_model_call(fake, finished_spans)
    assert not CONTENT_KEYS & set(span.attributes)
    assert span.attributes["gen_ai.request.model"] == "claude-test-1"
    assert not any(text in repr(dict(span.attributes)) for text in ("tulips", "gardens", "April"))
