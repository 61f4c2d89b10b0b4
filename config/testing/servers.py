"""Real HTTP servers on 127.0.0.1 for tests: fake upstreams speak the real protocol over a real
socket, and our code reaches them through its normal clients (requests, the anthropic SDK)."""

from __future__ import annotations

import json
import threading
import time
import uuid
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Iterator


class _QuietThreadingHTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True


@contextmanager
def serve_http(
    handler_class: type[BaseHTTPRequestHandler], *, port: int = 0, host: str = "127.0.0.1", **server_attrs
) -> Iterator[ThreadingHTTPServer]:
    """Run `handler_class` on `host` (127.0.0.1; `port`, else a free one) in a thread, for the `with` block.

    `server_attrs` are set on the server object, where handlers reach them as `self.server.<name>`.
    The server's base URL is `server.base_url`."""
    server = _QuietThreadingHTTPServer((host, port), handler_class)
    for name, value in server_attrs.items():
        setattr(server, name, value)
    server.base_url = f"http://{'127.0.0.1' if host == '0.0.0.0' else host}:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


@dataclass
class RecordedRequest:
    """A request a fake model API received (its `requests`), in the order they came."""

    path: str
    headers: dict[str, str]
    body: dict[str, Any]
    at: float = field(default_factory=time.monotonic)
    disconnected: bool = False
    finished: threading.Event = field(default_factory=threading.Event)


@dataclass
class Raw:
    """A scripted answer sent as it is, whatever the protocol says: a body and its content type (a
    JSON object where an event stream belongs, an HTML page, events of another API, garbage)."""

    body: bytes | str
    content_type: str = "text/event-stream; charset=utf-8"
    status: int = 200


class JsonApiHandler(BaseHTTPRequestHandler):
    """What the fake model APIs' handlers share: keep-alive, quiet, JSON answers with a request id
    (`request_id_header`, as each provider names it), every request recorded on `server.fake`."""

    protocol_version = "HTTP/1.1"
    request_id_header = "request-id"
    server: Any

    def log_message(self, format, *args):  # noqa: A002 - quiet test output
        pass

    def _send_json(self, status: int, body: dict[str, Any], headers: dict[str, str] | None = None) -> None:
        payload = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.send_header(self.request_id_header, f"req_{uuid.uuid4().hex[:16]}")
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(payload)

    def _send_raw(self, raw: Raw) -> None:
        payload = raw.body.encode() if isinstance(raw.body, str) else raw.body
        self.send_response(raw.status)
        self.send_header("Content-Type", raw.content_type)
        self.send_header("Content-Length", str(len(payload)))
        self.send_header(self.request_id_header, f"req_{uuid.uuid4().hex[:16]}")
        # One answer per connection: a client that refuses this one by its headers hangs up unread.
        self.send_header("Connection", "close")
        self.close_connection = True
        self.end_headers()
        try:
            self.wfile.write(payload)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client refused the answer by its headers and hung up: what a test may want

    def _record(self) -> tuple[dict[str, Any], RecordedRequest]:
        """Read the JSON body (kept as text if it isn't JSON) and record the request."""
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length)
        try:
            body = json.loads(raw or b"{}")
        except ValueError:
            body = {"_unparsed": raw.decode(errors="replace")}
        record = RecordedRequest(self.path, {k.lower(): v for k, v in self.headers.items()}, body)
        self.server.fake.requests.append(record)
        return body, record
