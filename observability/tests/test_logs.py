"""LOG_FORMAT=json: one JSON object a line with the request, user, session and trace ids where known; the
default stays readable text; with no OTEL_* endpoint, nothing of the OpenTelemetry SDK is even imported."""

from __future__ import annotations

import contextvars
import io
import json
import logging
import os
import subprocess
import sys

from django.conf import settings

from config.http.request_ids import RequestIdLogFilter, request_id_var
from observability import bind_log_context
from observability.logs import JsonFormatter


def _json_logger(stream: io.StringIO) -> logging.Logger:
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    handler.addFilter(RequestIdLogFilter())
    logger = logging.getLogger("observability.tests.json")
    logger.handlers = [handler]
    logger.propagate = False
    logger.setLevel(logging.INFO)
    return logger


def test_a_json_line_carries_the_request_user_and_session_where_known():
    stream = io.StringIO()
    logger = _json_logger(stream)

    def inside_a_turn():
        request_id_var.set("req-123")
        bind_log_context(user_id=7, session_id=42)
        logger.warning("Turn of session %s: %s", 42, 'a "quoted" problem')
        try:
            raise ValueError("boom")
        except ValueError:
            logger.exception("It failed")

    contextvars.copy_context().run(inside_a_turn)
    contextvars.Context().run(logger.info, "Outside any request")  # a context where nothing was bound
    first, second, third = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert first["level"] == "WARNING" and first["logger"] == "observability.tests.json"
    assert first["message"] == 'Turn of session 42: a "quoted" problem'
    assert (first["request_id"], first["user_id"], first["session_id"]) == ("req-123", 7, 42)
    assert first["time"].endswith("+00:00") and "T" in first["time"]
    assert "trace_id" not in first  # tracing is off in this process
    assert "ValueError: boom" in second["exception"]
    assert not {"request_id", "user_id", "session_id"} & set(third)


def _child(code: str, **env: str) -> subprocess.CompletedProcess:
    environment = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    return subprocess.run(
        [sys.executable, "-c", "import django, os; os.environ.setdefault('DJANGO_SETTINGS_MODULE', 'config.settings'); "
         "django.setup(); " + code],
        cwd=settings.BASE_DIR, env={**environment, "DEBUG": "1", **env}, capture_output=True, text=True, timeout=120,
    )  # fmt: skip


def test_a_process_logs_json_when_asked_and_text_by_default():
    code = "import logging; logging.getLogger('conduit.check').warning('hello %s', 'there')"
    as_json = _child(code, LOG_FORMAT="json")
    line = json.loads(as_json.stderr.strip().splitlines()[-1])
    assert (line["level"], line["logger"], line["message"]) == ("WARNING", "conduit.check", "hello there")
    as_text = _child(code)
    assert as_text.stderr.strip().splitlines()[-1].endswith("WARNING conduit.check [-] hello there")
    refused = _child("", LOG_FORMAT="xml")
    assert refused.returncode != 0 and "LOG_FORMAT must be" in refused.stderr


def test_without_an_otlp_endpoint_nothing_of_the_sdk_is_imported():
    code = (
        "import sys, config.asgi; "
        "print(sorted(m for m in sys.modules if m.startswith(('opentelemetry.sdk', 'opentelemetry.exporter', "
        "'observability.otel'))))"
    )
    assert _child(code).stdout.strip().splitlines()[-1] == "[]"
    traced = _child(code, OTEL_EXPORTER_OTLP_ENDPOINT="http://127.0.0.1:9")
    assert "'observability.otel'" in traced.stdout and "'opentelemetry.sdk.trace'" in traced.stdout


def test_with_tracing_on_a_json_line_names_the_current_trace_and_span():
    code = (
        "import logging, observability; from observability import otel; "
        "span = observability.span('work'); handle = span.__enter__(); "
        "context = handle.span.get_span_context(); "
        "print(format(context.trace_id, '032x'), format(context.span_id, '016x')); "
        "logging.getLogger('conduit.check').warning('inside'); span.__exit__(None, None, None)"
    )
    child = _child(code, LOG_FORMAT="json", OTEL_EXPORTER_OTLP_ENDPOINT="http://127.0.0.1:9", OTEL_BSP_EXPORT_TIMEOUT="100")
    trace_id, span_id = child.stdout.strip().splitlines()[-1].split()
    [line] = [json.loads(text) for text in child.stderr.splitlines() if '"inside"' in text]
    assert (line["trace_id"], line["span_id"]) == (trace_id, span_id)


def test_an_empty_multiprocess_directory_is_refused_at_start_up():
    refused = _child("", PROMETHEUS_MULTIPROC_DIR="")
    assert refused.returncode != 0 and "PROMETHEUS_MULTIPROC_DIR is set but empty" in refused.stderr
