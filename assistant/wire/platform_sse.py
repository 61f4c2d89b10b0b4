"""The platform's own Server-Sent Events: one turn event per event, as JSON on its `data:` line,
with `id:` = the event's per-session seq, so a client resumes with `Last-Event-ID`."""

from __future__ import annotations

from typing import Any

from assistant.wire.jsontext import dumps


def sse_event(frame: dict[str, Any]) -> bytes:
    return f"id: {frame['seq']}\ndata: {dumps(frame)}\n\n".encode()


class PlatformSseEncoder:
    content_type = "text/event-stream; charset=utf-8"
    headers: dict[str, str] = {}

    def encode(self, frame: dict[str, Any]) -> bytes:
        return sse_event(frame)

    def keepalive(self) -> bytes:
        return b": keep-alive\n\n"  # an SSE comment: keeps proxies from timing out a quiet stream
