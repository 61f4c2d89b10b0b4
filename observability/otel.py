"""The OpenTelemetry SDK's part: imported only when tracing is configured (observability.tracing)."""

from __future__ import annotations

import json
from contextlib import contextmanager
from typing import Any, Iterator

from django.conf import settings
from opentelemetry import propagate, trace
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.trace import SpanKind, Status, StatusCode

from config import __version__
from config.startup import stopping_duty

_tracer: trace.Tracer | None = None
_provider: TracerProvider | None = None


def setup() -> None:
    global _tracer, _provider
    resource = Resource.create({"service.name": settings.OTEL_SERVICE_NAME, "service.version": __version__})
    _provider = TracerProvider(resource=resource)
    # The exporter reads OTEL_EXPORTER_OTLP_(TRACES_)ENDPOINT, _HEADERS, _TIMEOUT…; the processor OTEL_BSP_*.
    _provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    trace.set_tracer_provider(_provider)
    _tracer = _provider.get_tracer("conduit", __version__)
    stopping_duty(_flush)


async def _flush() -> None:
    """Send what is buffered before a serving process exits."""
    import asyncio

    await asyncio.get_running_loop().run_in_executor(None, _provider.force_flush)


@contextmanager
def current_span(
    name: str, attributes: dict[str, Any] | None = None, *, server: bool = False, headers: Any = None
) -> Iterator[trace.Span]:
    parent = propagate.extract(headers) if headers is not None else None
    kind = SpanKind.SERVER if server else SpanKind.INTERNAL
    with _tracer.start_as_current_span(name, context=parent, kind=kind, attributes=attributes) as span:
        yield _SpanHandle(span)


class _SpanHandle:
    __slots__ = ("span",)

    def __init__(self, span: trace.Span) -> None:
        self.span = span

    def set(self, key: str, value: Any) -> None:
        self.span.set_attribute(key, value)


def inject() -> dict[str, str]:
    carrier: dict[str, str] = {}
    propagate.inject(carrier)
    return carrier


def current_ids() -> tuple[str, str] | None:
    context = trace.get_current_span().get_span_context()
    if not context.is_valid:
        return None
    return format(context.trace_id, "032x"), format(context.span_id, "016x")


class ModelCallSpan:
    """`chat <model>` with the GenAI semantic conventions' attributes."""

    def __init__(self, provider: str, model: str, messages: list, system: str) -> None:
        self.span = _tracer.start_span(
            f"chat {model}",
            kind=SpanKind.CLIENT,
            attributes={
                "gen_ai.operation.name": "chat",
                "gen_ai.provider.name": provider,
                "gen_ai.request.model": model,
            },
        )
        if settings.OTEL_CAPTURE_MESSAGE_CONTENT:
            self.span.set_attribute("gen_ai.input.messages", json.dumps(messages, default=str))
            if system:
                self.span.set_attribute("gen_ai.system_instructions", json.dumps([{"type": "text", "content": system}]))

    def headers(self) -> dict[str, str]:
        carrier: dict[str, str] = {}
        propagate.inject(carrier, context=trace.set_span_in_context(self.span))
        return carrier

    def finish(self, final: Any) -> None:
        usage = final.usage
        self.span.set_attributes(
            {
                "gen_ai.response.model": final.model or "",
                "gen_ai.usage.input_tokens": usage.input_tokens,
                "gen_ai.usage.output_tokens": usage.output_tokens,
                "gen_ai.response.finish_reasons": [final.stop_reason or ""],
            }
        )
        if settings.OTEL_CAPTURE_MESSAGE_CONTENT:
            self.span.set_attribute(
                "gen_ai.output.messages", json.dumps([{"role": "assistant", "content": final.content}], default=str)
            )
        self.span.end()

    def fail(self, exc: BaseException) -> None:
        self.span.set_attribute("error.type", getattr(exc, "code", None) or type(exc).__qualname__)
        self.span.set_status(Status(StatusCode.ERROR, str(getattr(exc, "message", "")) or None))
        self.span.end()
