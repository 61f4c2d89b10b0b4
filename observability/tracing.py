"""OpenTelemetry traces, when OTEL_EXPORTER_OTLP_ENDPOINT (or OTEL_EXPORTER_OTLP_TRACES_ENDPOINT) is set.

Unset, nothing of OpenTelemetry is imported and every function here hands back one shared do-nothing span.
Set, `observability.otel` sets up the SDK's tracer provider exporting over OTLP/HTTP (the SDK reads the
other standard OTEL_* variables itself) and these functions open spans named and attributed as the
OpenTelemetry semantic conventions say: HTTP server spans, `invoke_agent <agent>`, `chat <model>`,
`execute_tool <tool>` (GenAI conventions). Prompt and answer text go into spans only with
OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT=true.
"""

from __future__ import annotations

import importlib
from typing import Any

from django.conf import settings

ENABLED: bool = False  # set by configure()
_otel: Any = None  # observability.otel, once configured


class _NoSpan:
    """What every function answers with tracing off: usable as a context manager and as a model-call span."""

    __slots__ = ()

    def __enter__(self) -> _NoSpan:
        return self

    def __exit__(self, *exc_info: Any) -> None:
        return None

    def set(self, key: str, value: Any) -> None:
        pass

    def headers(self) -> dict[str, str]:
        return {}

    def finish(self, final: Any) -> None:
        pass

    def fail(self, exc: BaseException) -> None:
        pass


NO_SPAN = _NoSpan()


def configure() -> None:
    """Set up tracing if the environment asks for it (called once, by the app's ready())."""
    global ENABLED, _otel
    if settings.OTEL_TRACES_ENABLED and not ENABLED:
        _otel = importlib.import_module("observability.otel")
        _otel.setup()
        ENABLED = True


def span(name: str, attributes: dict[str, Any] | None = None, *, server: bool = False, headers: Any = None):
    """A span current while the `with` block runs; `server` with the request's `headers` (a mapping with
    `traceparent`): an HTTP server span continuing the caller's trace."""
    if not ENABLED:
        return NO_SPAN
    return _otel.current_span(name, attributes, server=server, headers=headers)


def turn_span(agent_slug: str, session_id: int):
    """`invoke_agent <slug>`, current while an agent's turn runs."""
    if not ENABLED:
        return NO_SPAN
    return _otel.current_span(
        f"invoke_agent {agent_slug}",
        {"gen_ai.operation.name": "invoke_agent", "gen_ai.agent.name": agent_slug,
         "gen_ai.conversation.id": str(session_id)},
    )  # fmt: skip


def model_call_span(provider: str, model: str, messages: list, system: str):
    """`chat <model>`, started now (child of the current span) and ended by its `finish(final)` or
    `fail(exc)`; not made current (a model call is an async generator, whose context is its reader's).
    Its `headers()` carry its trace context to the provider."""
    if not ENABLED:
        return NO_SPAN
    return _otel.ModelCallSpan(provider, model, messages, system)


def tool_call_span(name: str, call_id: str):
    """`execute_tool <name>`, current while the tool runs."""
    if not ENABLED:
        return NO_SPAN
    return _otel.current_span(
        f"execute_tool {name}",
        {"gen_ai.operation.name": "execute_tool", "gen_ai.tool.name": name, "gen_ai.tool.call.id": call_id},
    )


def trace_headers() -> dict[str, str]:
    """The current trace context as W3C headers (`traceparent`) for an outgoing request; {} when off."""
    if not ENABLED:
        return {}
    return _otel.inject()


def current_ids() -> tuple[str, str] | None:
    """(trace id, span id) of the current span in hex, for log lines; None when off or none."""
    if not ENABLED:
        return None
    return _otel.current_ids()
