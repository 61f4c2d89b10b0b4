"""Observability: Prometheus metrics, OpenTelemetry traces and JSON logs (issue 30).

The ground floor beside `config/`: it imports Django, `config` and prometheus-client, never another app, so
every app may call it. Call sites are one line each (`observability.turn_started(...)`,
`observability.model_call_finished(...)`), cheap when metrics are off (METRICS_ENABLED) and free of
OpenTelemetry when tracing is off (no OTEL_EXPORTER_OTLP_ENDPOINT): `observability.tracing` imports the SDK
only when it is configured.
"""

from __future__ import annotations

from observability.context import bind_log_context
from observability.metrics import (
    budget_refused,
    http_request_finished,
    model_call_finished,
    model_cost_added,
    orgproxy_upstream_answered,
    tool_call_finished,
    turn_first_token,
    turn_finished,
    turn_started,
    websocket_closed,
    websocket_opened,
)
from observability.timing import model_time_add
from observability.tracing import model_call_span, span, tool_call_span, trace_headers, turn_span

__all__ = [
    "bind_log_context",
    "budget_refused",
    "http_request_finished",
    "model_call_finished",
    "model_call_span",
    "model_cost_added",
    "model_time_add",
    "orgproxy_upstream_answered",
    "span",
    "tool_call_finished",
    "tool_call_span",
    "trace_headers",
    "turn_finished",
    "turn_first_token",
    "turn_span",
    "turn_started",
    "websocket_closed",
    "websocket_opened",
]
