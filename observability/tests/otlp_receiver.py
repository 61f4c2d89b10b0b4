"""A real OTLP/HTTP trace receiver on 127.0.0.1: what an OpenTelemetry Collector's `otlp` receiver does
with `POST /v1/traces` (protobuf body, optionally gzip), decoded with opentelemetry-proto."""

from __future__ import annotations

import gzip
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler
from typing import Any, Callable, Iterator

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue

from config.testing.servers import serve_http


def _value(value: AnyValue) -> Any:
    kind = value.WhichOneof("value")
    if kind == "array_value":
        return [_value(item) for item in value.array_value.values]
    return getattr(value, kind) if kind else None


@dataclass
class ReceivedSpan:
    name: str
    trace_id: str
    span_id: str
    parent_span_id: str
    kind: int
    attributes: dict[str, Any]
    resource: dict[str, Any]
    status_code: int


class Receiver:
    def __init__(self) -> None:
        self.spans: list[ReceivedSpan] = []
        self.lock = threading.Lock()
        self.base_url = ""

    def add(self, request: ExportTraceServiceRequest) -> None:
        with self.lock:
            for resource_spans in request.resource_spans:
                resource = {a.key: _value(a.value) for a in resource_spans.resource.attributes}
                for scope_spans in resource_spans.scope_spans:
                    for span in scope_spans.spans:
                        self.spans.append(
                            ReceivedSpan(
                                name=span.name, trace_id=span.trace_id.hex(), span_id=span.span_id.hex(),
                                parent_span_id=span.parent_span_id.hex(), kind=span.kind,
                                attributes={a.key: _value(a.value) for a in span.attributes},
                                resource=resource, status_code=span.status.code,
                            )
                        )  # fmt: skip

    def wait_for(self, found: Callable[[list[ReceivedSpan]], Any], timeout: float = 20) -> Any:
        """Poll until `found(spans)` is truthy (the exporter batches: spans come a little later)."""
        deadline = time.monotonic() + timeout
        while True:
            with self.lock:
                result = found(list(self.spans))
            if result or time.monotonic() > deadline:
                return result
            time.sleep(0.05)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, format, *args):  # noqa: A002
        pass

    def do_POST(self):  # noqa: N802
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        if self.headers.get("Content-Encoding") == "gzip":
            body = gzip.decompress(body)
        if self.path != "/v1/traces" or self.headers.get("Content-Type") != "application/x-protobuf":
            self.send_response(404)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        request = ExportTraceServiceRequest()
        request.ParseFromString(body)
        self.server.receiver.add(request)
        answer = ExportTraceServiceResponse().SerializeToString()
        self.send_response(200)
        self.send_header("Content-Type", "application/x-protobuf")
        self.send_header("Content-Length", str(len(answer)))
        self.end_headers()
        self.wfile.write(answer)


@contextmanager
def otlp_receiver() -> Iterator[Receiver]:
    receiver = Receiver()
    with serve_http(_Handler, receiver=receiver) as server:
        receiver.base_url = server.base_url
        yield receiver
