"""A fake OpenAI Chat Completions API: a real HTTP server on 127.0.0.1 that speaks the real protocol.

The real `openai` SDK talks to it through `base_url` (`fake.base_url`, ending in /v1). Each
`POST /v1/chat/completions` takes the next scripted reply from a queue (or the default one) and answers
with the real Server-Sent Events stream: `data: {chat.completion.chunk}` lines (a first chunk with the
role, `content` deltas, `tool_calls` deltas — id, type and name on the first piece of each call, its
arguments split across the following chunks —, a chunk with the `finish_reason`, the usage chunk with
empty `choices` when `stream_options.include_usage` was asked), then `data: [DONE]`; or a mid-stream
error chunk, or an HTTP error answer with OpenAI's JSON error body; or a stream cut before its end; or,
scripted as `Raw(body, content_type)`, any answer at all, sent as it is (a malformed provider).

    with fake_openai_server() as fake:
        fake.script(Chunks(text=["Hel", "lo"]))
        fake.script(Chunks(tool_calls=[FunctionCall("read_file", {"path": "a.txt"})]))
        fake.script(HttpError(429, "rate_limit_exceeded", "Slow down", retry_after=1))
        fake.requests[0].body["messages"]   # what the SDK sent

`POST /v1/embeddings` answers as OpenAI does: one vector per input (`fake.dimensions` floats, or
`dimensions`, derived from the input's text, so equal inputs embed equally), as floats or base64
(`encoding_format`), with `usage.prompt_tokens` one per word; a scripted HttpError at the head of
the queue answers it instead (other scripts are left for chat completions).
"""

from __future__ import annotations

import base64
import hashlib
import json
import struct
import threading
import time
import uuid
from collections import deque
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Iterator

from config.testing.servers import JsonApiHandler, Raw, RecordedRequest, serve_http

DEFAULT_MODEL = "gpt-test-1"


@dataclass
class FunctionCall:
    name: str
    arguments: dict[str, Any]
    id: str = field(default_factory=lambda: f"call_{uuid.uuid4().hex[:24]}")
    raw_arguments: str | None = None  # the arguments string as sent, instead of `arguments` as JSON

    def encoded(self) -> str:
        return self.raw_arguments if self.raw_arguments is not None else json.dumps(self.arguments)


@dataclass
class Chunks:
    """One streamed answer. `text` pieces become `content` deltas, in order."""

    text: list[str] = field(default_factory=list)
    reasoning: list[str] = field(default_factory=list)  # `reasoning_content` deltas (vLLM, DeepSeek)
    tool_calls: list[FunctionCall] = field(default_factory=list)
    finish_reason: str | None = None  # default: "tool_calls" when there are some, else "stop"
    prompt_tokens: int = 11
    completion_tokens: int | None = None  # default: one per text piece
    cached_tokens: int = 0
    send_usage: bool = True  # some compatible servers never send the usage chunk
    model: str = DEFAULT_MODEL
    delay: float = 0.0  # seconds between chunks
    pause_after: int | None = None  # text pieces sent before waiting at the gate
    error_after: int | None = None  # text pieces sent before an error chunk ends the stream
    error_type: str = "server_error"
    error_message: str = "The server had an error while processing your request."
    drop_after: int | None = None  # text pieces sent before the connection is cut without a word

    def usage(self) -> dict[str, Any]:
        completion = self.completion_tokens if self.completion_tokens is not None else max(1, len(self.text))
        return {
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": completion,
            "total_tokens": self.prompt_tokens + completion,
            "prompt_tokens_details": {"cached_tokens": self.cached_tokens},
        }


@dataclass
class HttpError:
    status: int
    code: str
    message: str
    type: str = "invalid_request_error"
    repeat: int = 1  # answer this many requests with it (the SDK retries some errors)
    retry_after: float | None = None


class FakeOpenAI:
    def __init__(self) -> None:
        self._scripts: deque[Chunks | HttpError | Raw] = deque()
        self._lock = threading.Lock()
        self.default = Chunks(text=["Hello", " from", " the", " fake", " GPT."])
        self.requests: list[RecordedRequest] = []
        self.gate = threading.Event()
        self.paused = threading.Event()
        self.base_url = ""
        self.dimensions = 8

    def script(self, *replies: Chunks | HttpError | Raw) -> None:
        with self._lock:
            self._scripts.extend(replies)

    def release(self) -> None:
        self.gate.set()

    def wait_until_paused(self, timeout: float = 10) -> None:
        if not self.paused.wait(timeout):
            raise AssertionError("the fake model never reached its pause point")

    def next_embeddings_error(self) -> HttpError | None:
        with self._lock:
            if self._scripts and isinstance(self._scripts[0], HttpError):
                return self._scripts.popleft()
        return None

    def next_script(self) -> Chunks | HttpError | Raw:
        with self._lock:
            if not self._scripts:
                return self.default
            head = self._scripts[0]
            if isinstance(head, HttpError) and head.repeat > 1:
                head.repeat -= 1
                return HttpError(head.status, head.code, head.message, head.type, 1, head.retry_after)
            return self._scripts.popleft()


def stream_chunks(reply: Chunks, completion_id: str, include_usage: bool) -> Iterator[dict[str, Any] | str]:
    """The chunk sequence of the real API for one reply; the strings "pause"/"drop"/"error" are cues."""
    created = int(time.time())

    def chunk(delta: dict[str, Any], finish_reason: str | None = None) -> dict[str, Any]:
        return {
            "id": completion_id, "object": "chat.completion.chunk", "created": created, "model": reply.model,
            "system_fingerprint": "fp_fake", "usage": None,
            "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}],
        }  # fmt: skip

    yield chunk({"role": "assistant", "content": "", "refusal": None})
    for piece in reply.reasoning:
        yield chunk({"reasoning_content": piece})
    for sent, piece in enumerate(reply.text):
        if reply.pause_after is not None and sent == reply.pause_after:
            yield "pause"
        if reply.error_after is not None and sent == reply.error_after:
            yield "error"
            return
        if reply.drop_after is not None and sent == reply.drop_after:
            yield "drop"
            return
        yield chunk({"content": piece})
    for index, call in enumerate(reply.tool_calls):
        yield chunk({"tool_calls": [{"index": index, "id": call.id, "type": "function",
                                     "function": {"name": call.name, "arguments": ""}}]})  # fmt: skip
        encoded = call.encoded()
        third = max(1, len(encoded) // 3)
        for part in (encoded[:third], encoded[third : 2 * third], encoded[2 * third :]):
            yield chunk({"tool_calls": [{"index": index, "function": {"arguments": part}}]})
    finish = reply.finish_reason or ("tool_calls" if reply.tool_calls else "stop")
    yield chunk({}, finish)
    if include_usage and reply.send_usage:
        yield {
            "id": completion_id, "object": "chat.completion.chunk", "created": created, "model": reply.model,
            "system_fingerprint": "fp_fake", "choices": [], "usage": reply.usage(),
        }  # fmt: skip


def _vector(text: str, dimensions: int) -> list[float]:
    digest = hashlib.sha256(text.encode()).digest()
    return [round((digest[n % len(digest)] - 128) / 128, 6) for n in range(dimensions)]


def embeddings_answer(body: dict[str, Any], dimensions: int) -> dict[str, Any]:
    inputs = body.get("input")
    inputs = [inputs] if isinstance(inputs, str) or (isinstance(inputs, list) and inputs and isinstance(inputs[0], int)) else inputs
    size = body.get("dimensions") or dimensions
    data, tokens = [], 0
    for index, item in enumerate(inputs):
        text = item if isinstance(item, str) else " ".join(map(str, item))
        tokens += len(item) if isinstance(item, list) else max(1, len(text.split()))
        vector = _vector(text, size)
        if body.get("encoding_format") == "base64":
            vector = base64.b64encode(struct.pack(f"<{size}f", *vector)).decode()
        data.append({"object": "embedding", "index": index, "embedding": vector})
    return {"object": "list", "data": data, "model": body.get("model"),
            "usage": {"prompt_tokens": tokens, "total_tokens": tokens}}  # fmt: skip


def full_completion(reply: Chunks, completion_id: str) -> dict[str, Any]:
    message: dict[str, Any] = {"role": "assistant", "content": "".join(reply.text) or None, "refusal": None}
    if reply.tool_calls:
        message["tool_calls"] = [
            {"id": c.id, "type": "function", "function": {"name": c.name, "arguments": c.encoded()}}
            for c in reply.tool_calls
        ]
    finish = reply.finish_reason or ("tool_calls" if reply.tool_calls else "stop")
    return {
        "id": completion_id, "object": "chat.completion", "created": int(time.time()), "model": reply.model,
        "choices": [{"index": 0, "message": message, "logprobs": None, "finish_reason": finish}],
        "usage": reply.usage(),
    }  # fmt: skip


class _Handler(JsonApiHandler):
    request_id_header = "x-request-id"

    def do_POST(self):  # noqa: N802
        fake: FakeOpenAI = self.server.fake
        body, record = self._record()
        try:
            if self.path.split("?")[0] == "/v1/embeddings":
                error = fake.next_embeddings_error()
                if error is None:
                    self._send_json(200, embeddings_answer(body, fake.dimensions))
                else:
                    self._send_json(error.status, {"error": {"message": error.message, "type": error.type,
                                                             "param": None, "code": error.code}})  # fmt: skip
                return
            if self.path.split("?")[0] != "/v1/chat/completions":
                self._send_json(404, {"error": {"message": f"Unknown path {self.path}", "type": "invalid_request_error",
                                                "param": None, "code": "unknown_url"}})  # fmt: skip
                return
            script = fake.next_script()
            if isinstance(script, Raw):
                self._send_raw(script)
                return
            if isinstance(script, HttpError):
                headers = {"retry-after": str(script.retry_after)} if script.retry_after is not None else None
                self._send_json(script.status, {"error": {"message": script.message, "type": script.type,
                                                          "param": None, "code": script.code}}, headers)  # fmt: skip
                return
            completion_id = f"chatcmpl-{uuid.uuid4().hex[:24]}"
            if not body.get("stream"):
                self._send_json(200, full_completion(script, completion_id))
                return
            include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
            self._stream(fake, script, completion_id, include_usage, record)
        finally:
            record.finished.set()

    def _write(self, data: str) -> None:
        self.wfile.write(f"data: {data}\n\n".encode())
        self.wfile.flush()

    def _stream(self, fake: FakeOpenAI, reply: Chunks, completion_id: str, include_usage: bool, record) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream; charset=utf-8")
        self.send_header("Cache-Control", "no-cache")
        self.send_header("x-request-id", f"req_{uuid.uuid4().hex[:16]}")
        self.send_header("Connection", "close")
        self.end_headers()
        self.close_connection = True
        try:
            for item in stream_chunks(reply, completion_id, include_usage):
                if item == "pause":
                    fake.paused.set()
                    fake.gate.wait(30)
                    fake.paused.clear()
                    fake.gate.clear()
                    continue
                if item == "drop":
                    self.connection.shutdown(2)
                    return
                if item == "error":  # what OpenAI sends when it fails after the stream began
                    self._write(json.dumps({"error": {"message": reply.error_message, "type": reply.error_type,
                                                      "param": None, "code": None}}))  # fmt: skip
                    return
                self._write(json.dumps(item))
                if reply.delay:
                    time.sleep(reply.delay)
            self._write("[DONE]")
            # A client that stopped reading shows up as a failed write of this probe or of a chunk.
            self.wfile.write(b": done\n\n")
            self.wfile.flush()
        except (BrokenPipeError, ConnectionResetError, OSError):
            record.disconnected = True


@contextmanager
def fake_openai_server() -> Iterator[FakeOpenAI]:
    fake = FakeOpenAI()
    with serve_http(_Handler, fake=fake) as server:
        fake.base_url = server.base_url + "/v1"
        yield fake
