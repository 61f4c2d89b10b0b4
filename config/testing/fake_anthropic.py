"""A fake Anthropic Messages API: a real HTTP server on 127.0.0.1 that speaks the real protocol.

The real `anthropic` SDK talks to it through `base_url`. Each request to `POST /v1/messages` takes the
next scripted reply from a queue (or the default one) and answers with the real Server-Sent Events
sequence (`message_start` with input and cache token counts, `content_block_start/delta/stop` for text,
thinking and tool_use, `message_delta` with the cumulative output count, `message_stop`, `ping`), a
mid-stream `error` event, or an HTTP error answer (429, 529, 500, 401 …) with the API's JSON error body;
or, scripted as `Raw(body, content_type)`, any answer at all, sent as it is (a malformed provider).

    with fake_anthropic_server() as fake:
        fake.script(Reply(text=["Hel", "lo"]))
        fake.script(Reply(tool_uses=[ToolUse("read_file", {"path": "a.txt"})], stop_reason="tool_use"))
        fake.script(HttpError(529, "overloaded_error", "Overloaded"))
        ... point the SDK at fake.base_url ...
        fake.requests[0].body["messages"]   # what the SDK sent

A reply can pause at a gate (`pause_after=N` chunks, released with `fake.release()`), so tests can act
while an answer is half streamed; `fake.requests[i].disconnected` tells whether the client hung up.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections import deque
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator

from config.testing.servers import JsonApiHandler, Raw, RecordedRequest, serve_http

DEFAULT_MODEL = "claude-test-1"


@dataclass
class ToolUse:
    name: str
    input: dict[str, Any]
    id: str = field(default_factory=lambda: f"toolu_{uuid.uuid4().hex[:24]}")


@dataclass
class Reply:
    """One streamed answer. `text` chunks become text_delta events, in order."""

    text: list[str] = field(default_factory=list)
    thinking: list[str] = field(default_factory=list)
    tool_uses: list[ToolUse] = field(default_factory=list)
    stop_reason: str = "end_turn"
    input_tokens: int = 12
    output_tokens: int | None = None  # default: one per text chunk
    start_output_tokens: int = 1  # output tokens counted in message_start (the real API's first count)
    cache_read_input_tokens: int = 0
    cache_creation_input_tokens: int = 0
    model: str = DEFAULT_MODEL
    delay: float = 0.0  # seconds between events
    pause_after: int | None = None  # text chunks sent before waiting at the gate
    error_after: int | None = None  # text chunks sent before an `error` event ends the stream
    error_type: str = "overloaded_error"
    error_message: str = "Overloaded"
    drop_after: int | None = None  # text chunks sent before the connection is cut without a word

    def start_usage(self) -> dict[str, int]:
        """The usage its `message_start` event carries: all a client knows of an answer cut short."""
        return {
            "input_tokens": self.input_tokens,
            "output_tokens": self.start_output_tokens,
            "cache_read_input_tokens": self.cache_read_input_tokens,
            "cache_creation_input_tokens": self.cache_creation_input_tokens,
        }


@dataclass
class HttpError:
    status: int
    error_type: str
    message: str
    repeat: int = 1  # answer this many requests with it (the SDK retries some errors)
    retry_after: int | None = None


class FakeAnthropic:
    def __init__(self) -> None:
        self._scripts: deque[Reply | HttpError | Raw] = deque()
        self._lock = threading.Lock()
        self.default: Reply = Reply(text=["Hello", " from", " the", " fake", " model."])
        # Makes the reply from the request's body when nothing is scripted (the demo model echoes).
        self.responder: Callable[[dict[str, Any]], Reply] | None = None
        self.requests: list[RecordedRequest] = []
        self.gate = threading.Event()
        self.paused = threading.Event()  # set while a reply waits at the gate
        self.base_url = ""

    def script(self, *replies: Reply | HttpError | Raw) -> None:
        with self._lock:
            self._scripts.extend(replies)

    def release(self) -> None:
        self.gate.set()

    def reset(self) -> None:
        """As new, for the next test of a module that shares this fake: no scripts, requests or responder;
        the gate closed (a release nobody waited for would let the next pause through)."""
        with self._lock:
            self._scripts.clear()
            self.requests.clear()
        self.responder = None
        self.gate.clear()
        self.paused.clear()

    def wait_until_paused(self, timeout: float = 10) -> None:
        if not self.paused.wait(timeout):
            raise AssertionError("the fake model never reached its pause point")

    def next_script(self, body: dict[str, Any] | None = None) -> Reply | HttpError | Raw:
        with self._lock:
            if not self._scripts:
                return self.responder(body or {}) if self.responder else self.default
            head = self._scripts[0]
            if isinstance(head, HttpError) and head.repeat > 1:
                head.repeat -= 1
                return HttpError(head.status, head.error_type, head.message, 1, head.retry_after)
            return self._scripts.popleft()


def sse_events(reply: Reply, message_id: str) -> Iterator[tuple[str, dict[str, Any]] | str]:
    """The event sequence of the real API for one reply; the strings "pause"/"drop" are cues."""
    output_tokens = reply.output_tokens if reply.output_tokens is not None else max(1, len(reply.text))
    yield "message_start", {
        "type": "message_start",
        "message": {
            "id": message_id, "type": "message", "role": "assistant", "content": [], "model": reply.model,
            "stop_reason": None, "stop_sequence": None,
            "usage": reply.start_usage(),
        },
    }  # fmt: skip
    yield "ping", {"type": "ping"}
    index = 0
    if reply.thinking:
        yield "content_block_start", {"type": "content_block_start", "index": index,
                                      "content_block": {"type": "thinking", "thinking": "", "signature": ""}}  # fmt: skip
        for chunk in reply.thinking:
            yield "content_block_delta", {"type": "content_block_delta", "index": index,
                                          "delta": {"type": "thinking_delta", "thinking": chunk}}  # fmt: skip
        yield "content_block_delta", {"type": "content_block_delta", "index": index,
                                      "delta": {"type": "signature_delta", "signature": "sig-" + message_id}}  # fmt: skip
        yield "content_block_stop", {"type": "content_block_stop", "index": index}
        index += 1
    if reply.text:
        yield "content_block_start", {"type": "content_block_start", "index": index,
                                      "content_block": {"type": "text", "text": ""}}  # fmt: skip
        for sent, chunk in enumerate(reply.text):
            if reply.pause_after is not None and sent == reply.pause_after:
                yield "pause"
            if reply.error_after is not None and sent == reply.error_after:
                yield "error", {"type": "error", "error": {"type": reply.error_type, "message": reply.error_message}}
                return
            if reply.drop_after is not None and sent == reply.drop_after:
                yield "drop"
                return
            yield "content_block_delta", {"type": "content_block_delta", "index": index,
                                          "delta": {"type": "text_delta", "text": chunk}}  # fmt: skip
        yield "content_block_stop", {"type": "content_block_stop", "index": index}
        index += 1
    for tool in reply.tool_uses:
        yield "content_block_start", {"type": "content_block_start", "index": index,
                                      "content_block": {"type": "tool_use", "id": tool.id, "name": tool.name, "input": {}}}  # fmt: skip
        encoded = json.dumps(tool.input)
        middle = len(encoded) // 2
        for part in (encoded[:middle], encoded[middle:]):
            yield "content_block_delta", {"type": "content_block_delta", "index": index,
                                          "delta": {"type": "input_json_delta", "partial_json": part}}  # fmt: skip
        yield "content_block_stop", {"type": "content_block_stop", "index": index}
        index += 1
    yield "message_delta", {"type": "message_delta", "delta": {"stop_reason": reply.stop_reason, "stop_sequence": None},
                            "usage": {"output_tokens": output_tokens}}  # fmt: skip
    yield "message_stop", {"type": "message_stop"}


def full_message(reply: Reply, message_id: str) -> dict[str, Any]:
    content: list[dict[str, Any]] = []
    if reply.text:
        content.append({"type": "text", "text": "".join(reply.text)})
    content += [{"type": "tool_use", "id": t.id, "name": t.name, "input": t.input} for t in reply.tool_uses]
    return {
        "id": message_id, "type": "message", "role": "assistant", "model": reply.model, "content": content,
        "stop_reason": reply.stop_reason, "stop_sequence": None,
        "usage": {"input_tokens": reply.input_tokens, "output_tokens": reply.output_tokens or len(reply.text),
                  "cache_creation_input_tokens": reply.cache_creation_input_tokens,
                  "cache_read_input_tokens": reply.cache_read_input_tokens},
    }  # fmt: skip


class _Handler(JsonApiHandler):
    def do_POST(self):  # noqa: N802
        fake: FakeAnthropic = self.server.fake
        body, record = self._record()
        try:
            if self.path.split("?")[0] != "/v1/messages":
                self._send_json(404, {"type": "error", "error": {"type": "not_found_error", "message": "Not found"}})
                return
            script = fake.next_script(body)
            if isinstance(script, Raw):
                self._send_raw(script)
                return
            if isinstance(script, HttpError):
                headers = {"retry-after": str(script.retry_after)} if script.retry_after is not None else None
                self._send_json(script.status, {"type": "error", "error": {"type": script.error_type, "message": script.message}}, headers)
                return
            message_id = f"msg_{uuid.uuid4().hex[:24]}"
            if not body.get("stream"):
                self._send_json(200, full_message(script, message_id))
                return
            self._stream(fake, script, message_id, record)
        finally:
            record.finished.set()

    def _stream(self, fake: FakeAnthropic, reply: Reply, message_id: str, record: RecordedRequest) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream; charset=utf-8")
        self.send_header("Cache-Control", "no-cache")
        self.send_header("request-id", f"req_{uuid.uuid4().hex[:16]}")
        self.send_header("Connection", "close")
        self.end_headers()
        self.close_connection = True
        try:
            for event in sse_events(reply, message_id):
                if event == "pause":
                    fake.paused.set()
                    fake.gate.wait(30)
                    fake.paused.clear()
                    fake.gate.clear()
                    continue
                if event == "drop":
                    self.connection.shutdown(2)
                    return
                name, data = event
                self.wfile.write(f"event: {name}\ndata: {json.dumps(data)}\n\n".encode())
                self.wfile.flush()
                if reply.delay:
                    time.sleep(reply.delay)
            # A client that stopped reading shows up as a failed write of this probe or of an event.
            self.wfile.write(b": done\n\n")
            self.wfile.flush()
        except (BrokenPipeError, ConnectionResetError, OSError):
            record.disconnected = True


@contextmanager
def fake_anthropic_server(port: int = 0, host: str = "127.0.0.1") -> Iterator[FakeAnthropic]:
    fake = FakeAnthropic()
    with serve_http(_Handler, port=port, host=host, fake=fake) as server:
        fake.base_url = server.base_url
        yield fake
