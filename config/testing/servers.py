"""Real HTTP servers on 127.0.0.1 for tests: fake upstreams speak the real protocol over a real
socket, and our code reaches them through its normal clients (requests, the anthropic SDK)."""

from __future__ import annotations

import threading
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Iterator


class _QuietThreadingHTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True


@contextmanager
def serve_http(
    handler_class: type[BaseHTTPRequestHandler], *, port: int = 0, **server_attrs
) -> Iterator[ThreadingHTTPServer]:
    """Run `handler_class` on 127.0.0.1 (`port`, else a free one) in a thread, for the `with` block.

    `server_attrs` are set on the server object, where handlers reach them as `self.server.<name>`.
    The server's base URL is `server.base_url`."""
    server = _QuietThreadingHTTPServer(("127.0.0.1", port), handler_class)
    for name, value in server_attrs.items():
        setattr(server, name, value)
    server.base_url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
