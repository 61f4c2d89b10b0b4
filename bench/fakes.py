"""Fake upstreams for the benchmarks, each run in its own process so that it doesn't share a
GIL with Conduit or the load generator. Prints its base URL, serves until stdin closes.

    python bench/fakes.py claire                       # the fake Claire API of the tests
    python bench/fakes.py anthropic <chunks> <delay>   # a fake model streaming <chunks> text deltas
    python bench/fakes.py openai <chunks>              # the fake Chat Completions API, <chunks> deltas

The OpenAI fake answers non-streamed and streamed Chat Completions with no delay, on kept-alive
connections (a streamed answer in chunked transfer encoding, as OpenAI's servers send it, rather
than the test fake's `Connection: close`), with TCP_NODELAY; one thread per connection. Measured
here: ~7,500 non-streamed answers/s on one connection, far above what the servers it stands behind
ask of it (bench/turns_wrk.py).
"""

from __future__ import annotations

import json
import sys
import threading
import time
import uuid
from http.server import ThreadingHTTPServer
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from config.testing import fake_anthropic  # noqa: E402


class StampingHandler(fake_anthropic._Handler):
    """Streams like the test fake, but each text delta is `<index>:<moment sent>;`, the moment
    being `time.monotonic()` (one clock for every process on Linux), so a client can check that
    it got every delta once and in order, and how long each took to reach it."""

    disable_nagle_algorithm = True

    def _stream(self, fake, reply, message_id, record) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream; charset=utf-8")
        self.send_header("Cache-Control", "no-cache")
        self.send_header("Connection", "close")
        self.end_headers()
        self.close_connection = True
        index = 0
        try:
            for event in fake_anthropic.sse_events(reply, message_id):
                name, data = event
                is_text = name == "content_block_delta" and data["delta"].get("type") == "text_delta"
                if is_text:
                    if index and reply.delay:
                        time.sleep(reply.delay)
                    data = {**data, "delta": {"type": "text_delta", "text": f"{index}:{time.monotonic():.6f};"}}
                    index += 1
                self.wfile.write(f"event: {name}\ndata: {json.dumps(data)}\n\n".encode())
                self.wfile.flush()
        except (BrokenPipeError, ConnectionResetError, OSError):
            record.disconnected = True


def _keep_alive_openai_handler():
    """The test fake's handler (config.testing.fake_openai) with the same answers, but a streamed
    one keeps the connection open (chunked transfer encoding) instead of closing it."""
    from config.testing import fake_openai

    class Handler(fake_openai._Handler):
        disable_nagle_algorithm = True

        def _write(self, data: str) -> None:
            payload = f"data: {data}\n\n".encode()
            self.wfile.write(b"%x\r\n%s\r\n" % (len(payload), payload))  # one chunk, one send

        def _stream(self, fake, reply, completion_id: str, include_usage: bool, record) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream; charset=utf-8")
            self.send_header("Cache-Control", "no-cache")
            self.send_header("x-request-id", f"req_{uuid.uuid4().hex[:16]}")
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            try:
                for item in fake_openai.stream_chunks(reply, completion_id, include_usage):
                    if isinstance(item, str):  # the test fake's pause/drop/error cues: not scripted here
                        continue
                    self._write(json.dumps(item))
                self._write("[DONE]")
                self.wfile.write(b"0\r\n\r\n")
            except (BrokenPipeError, ConnectionResetError, OSError):
                record.disconnected = True
                self.close_connection = True

    return Handler


def main() -> None:
    kind = sys.argv[1]
    if kind == "claire":
        from orgproxy.tests import fake_claire
        from orgproxy.tests.fake_claire import FakeClaire

        # Headers and body leave in two writes: without TCP_NODELAY, Nagle's algorithm holds the
        # body until the client's delayed ACK (~40 ms), which a real upstream doesn't do.
        fake_claire._Handler.disable_nagle_algorithm = True

        # Not serve_http (the tests' server): its listen backlog of 5 drops the SYNs of 16 pooled
        # connections opened at once, and the retransmission adds a second to a few requests of
        # whichever server is measured first. And keep no record of the requests (unbounded growth).
        claire = FakeClaire()
        claire.requests = _Discard()
        _serve_until_stdin_closes(fake_claire._Handler, claire=claire)
    elif kind == "anthropic":
        chunks, delay = int(sys.argv[2]), float(sys.argv[3])
        fake = fake_anthropic.FakeAnthropic()
        fake.default = fake_anthropic.Reply(text=["x"] * chunks, delay=delay)
        # The recorded requests would grow without bound over a benchmark: keep none.
        fake.requests = _Discard()
        _serve_until_stdin_closes(StampingHandler, fake=fake)
    elif kind == "openai":
        from config.testing import fake_openai

        fake = fake_openai.FakeOpenAI()
        fake.default = fake_openai.Chunks(text=["x"] * int(sys.argv[2]))
        fake.requests = _Discard()
        _serve_until_stdin_closes(_keep_alive_openai_handler(), path="/v1", fake=fake)
    else:
        raise SystemExit(f"unknown fake {kind!r}")


def _serve_until_stdin_closes(handler, *, path: str = "", **server_attrs) -> None:
    """Serve `handler` on a free port, print the base URL (+ `path`), stop when stdin closes."""
    server = _BigBacklogServer(("127.0.0.1", 0), handler)
    for name, value in server_attrs.items():
        setattr(server, name, value)
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    print(f"http://127.0.0.1:{server.server_address[1]}{path}", flush=True)
    sys.stdin.read()
    server.shutdown()


class _BigBacklogServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 2048  # a thousand streams connect at once

    def handle_error(self, request, client_address) -> None:
        if isinstance(sys.exc_info()[1], (ConnectionResetError, BrokenPipeError)):
            return  # a load generator closing its kept-alive connections at the end of a run
        super().handle_error(request, client_address)


class _Discard(list):
    def append(self, item) -> None:
        pass


if __name__ == "__main__":
    main()
