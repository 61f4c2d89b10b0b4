"""The Prometheus series and the one-line functions that move them.

Names and labels are the operator's contract (docs/observability.md); every label set is bounded: routes are
URL patterns, model names are capped per process (MODEL_LABELS_MAX, the rest count as `other`), agent slugs
are never labels. Label children are looked up once and kept (`_child`): `.labels()` takes a lock and
builds a key on every call, and the turn path is counted in microseconds (bench/RESULTS.md).

Several worker processes (`manage.py run --workers N`): prometheus-client's multiprocess mode, each process
writing its values to memory-mapped files in PROMETHEUS_MULTIPROC_DIR (made and emptied by the run command),
summed by whichever process answers the scrape (observability/views.py). Gauges count live processes only.

With METRICS_ENABLED off, prometheus-client is not imported and every function returns at once.
"""

from __future__ import annotations

import threading
from typing import Any

from django.conf import settings

ENABLED: bool = settings.METRICS_ENABLED
MODEL_LABELS_MAX = 200  # distinct provider/model pairs one process labels; users choose model names
OTHER = "other"
TRANSPORTS = frozenset({"websocket", "sse", "run", "openai", "cli"})
TOKEN_KINDS = (
    ("input_tokens", "input"),
    ("output_tokens", "output"),
    ("cache_read_input_tokens", "cache_read"),
    ("cache_creation_input_tokens", "cache_write"),
)

if ENABLED:
    from prometheus_client import Counter, Gauge, Histogram, disable_created_metrics

    disable_created_metrics()  # no `_created` series beside each counter (multiprocess mode has none either)

    HTTP_REQUESTS = Counter(
        "conduit_http_requests_total", "HTTP requests answered, by method, URL pattern and status.",
        ["method", "route", "status"],
    )  # fmt: skip
    HTTP_DURATION = Histogram(
        "conduit_http_request_duration_seconds",
        "Time from a request's arrival until its response began (a streamed body's duration not included).",
        ["method", "route"],
        buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
    )
    TURNS = Counter("conduit_turns_total", "Agent turns ended, by transport and final status.", ["transport", "status"])
    TURN_DURATION = Histogram(
        "conduit_turn_duration_seconds", "Agent turns' duration, start to end.", ["transport"],
        buckets=(0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600),
    )  # fmt: skip
    TURN_FIRST_TOKEN = Histogram(
        "conduit_turn_first_token_seconds", "Time from a turn's start to the model's first text.", ["transport"],
        buckets=(0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
    )  # fmt: skip
    TURNS_RUNNING = Gauge("conduit_turns_running", "Agent turns running now.", multiprocess_mode="livesum")
    MODEL_CALLS = Counter(
        "conduit_model_calls_total", "Model calls ended, by provider, model and outcome (ok, error, cancelled).",
        ["provider", "model", "outcome"],
    )  # fmt: skip
    MODEL_TOKENS = Counter(
        "conduit_model_tokens_total", "Tokens of model calls, by kind (input, output, cache_read, cache_write).",
        ["provider", "model", "kind"],
    )  # fmt: skip
    MODEL_COST = Counter(
        "conduit_model_cost_total", "Cost of model calls at the LLM configs' prices (their currency).",
        ["provider", "model"],
    )  # fmt: skip
    TOOL_CALLS = Counter("conduit_tool_calls_total", "Tool calls ended, by outcome (ok, error).", ["outcome"])
    TOOL_DURATION = Histogram(
        "conduit_tool_call_duration_seconds", "Tool calls' duration.",
        buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120),
    )  # fmt: skip
    BUDGET_REFUSALS = Counter("conduit_budget_refusals_total", "Turns and model calls refused for a used-up budget.")
    WEBSOCKETS = Gauge("conduit_websocket_connections", "Websocket connections open now.", multiprocess_mode="livesum")
    ORGPROXY_UPSTREAM = Counter(
        "conduit_orgproxy_upstream_requests_total",
        "Organization server requests to Claire, by upstream route and status (or timeout, unreachable).",
        ["route", "status"],
    )

_children: dict[tuple, Any] = {}
_model_labels: set[tuple[str, str]] = set()
_model_labels_lock = threading.Lock()


def _child(metric, *labels: str):
    """`metric.labels(*labels)`, looked up once per label set and process."""
    key = (id(metric), *labels)
    child = _children.get(key)
    if child is None:
        child = _children[key] = metric.labels(*labels)
    return child


def _model_label(provider: str, model: str) -> tuple[str, str]:
    """(provider, model) as labels: the first MODEL_LABELS_MAX pairs as they are (cut to 100 characters),
    any further pair as `other` (users name the models of their own configs)."""
    pair = (provider[:32] or "unknown", model[:100] or "unknown")
    if pair in _model_labels:
        return pair
    with _model_labels_lock:
        if len(_model_labels) < MODEL_LABELS_MAX:
            _model_labels.add(pair)
            return pair
    return (pair[0], OTHER)


# --- HTTP -----------------------------------------------------------------------------------------

_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


def http_request_finished(method: str, route: str, status: int, seconds: float) -> None:
    if not ENABLED:
        return
    method = method if method in _METHODS else OTHER
    _child(HTTP_REQUESTS, method, route, str(status)).inc()
    _child(HTTP_DURATION, method, route).observe(seconds)


# --- turns ----------------------------------------------------------------------------------------


def turn_started() -> None:
    if ENABLED:
        TURNS_RUNNING.inc()


def turn_first_token(transport: str, seconds: float) -> None:
    if ENABLED:
        _child(TURN_FIRST_TOKEN, transport).observe(seconds)


def turn_finished(transport: str, status: str, seconds: float, *, running: bool = True) -> None:
    """A turn ended with `status` (complete, stopped, error, awaiting_approval) after `seconds`; `running`:
    it was counted by turn_started."""
    if not ENABLED:
        return
    if running:
        TURNS_RUNNING.dec()
    _child(TURNS, transport, status).inc()
    _child(TURN_DURATION, transport).observe(seconds)


# --- model calls ----------------------------------------------------------------------------------


def model_call_finished(provider: str, model: str, outcome: str, usage: Any = None) -> None:
    """A model call ended (`outcome`: ok, error, cancelled) having used `usage` (a Usage, or None)."""
    if not ENABLED:
        return
    provider, model = _model_label(provider, model)
    _child(MODEL_CALLS, provider, model, outcome).inc()
    if usage is None:
        return
    for field, kind in TOKEN_KINDS:
        count = getattr(usage, field, 0)
        if count:
            _child(MODEL_TOKENS, provider, model, kind).inc(count)


def model_cost_added(provider: str, model: str, cost: Any) -> None:
    """`cost` (a Decimal or None: no price known) of a model call."""
    if ENABLED and cost:
        _child(MODEL_COST, *_model_label(provider, model)).inc(float(cost))


# --- tools, budgets, websockets, the organization server -------------------------------------------


def tool_call_finished(is_error: bool, seconds: float) -> None:
    if ENABLED:
        _child(TOOL_CALLS, "error" if is_error else "ok").inc()
        TOOL_DURATION.observe(seconds)


def budget_refused() -> None:
    if ENABLED:
        BUDGET_REFUSALS.inc()


def websocket_opened() -> None:
    if ENABLED:
        WEBSOCKETS.inc()


def websocket_closed() -> None:
    if ENABLED:
        WEBSOCKETS.dec()


def orgproxy_upstream_answered(route: str, status: int | str) -> None:
    """A request to Claire by its route (a pattern such as `/m2m/client_sessions/{session_id}`) answered
    `status`, or failed: `timeout`, `unreachable`."""
    if ENABLED:
        _child(ORGPROXY_UPSTREAM, route, str(status)).inc()
