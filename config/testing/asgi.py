"""Tests: one HTTP request to an ASGI application in this process, as a server would make it."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field


@dataclass
class AsgiAnswer:
    status: int
    headers: dict[str, str]
    body: bytes = b""
    messages: list[dict] = field(default_factory=list)


def _scope(method: str, path: str, headers: dict[str, str], body: bytes) -> dict:
    path, _, query = path.partition("?")
    raw_headers = [(b"host", b"localhost"), (b"content-length", str(len(body)).encode())]
    raw_headers += [(name.lower().encode(), value.encode()) for name, value in headers.items()]
    return {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": method, "scheme": "http",
        "path": path, "raw_path": path.encode(), "query_string": query.encode(), "root_path": "",
        "headers": raw_headers, "client": ("127.0.0.1", 40000), "server": ("127.0.0.1", 8000),
    }  # fmt: skip


async def asgi_request(
    application, method: str, path: str, *, headers: dict[str, str] | None = None, body: bytes = b""
) -> AsgiAnswer:
    """The whole answer; the client stays connected until it has it."""
    messages: list[dict] = []
    sent = False

    async def receive():
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        await asyncio.Event().wait()

    async def send(message):
        messages.append(message)

    await application(_scope(method, path, headers or {}, body), receive, send)
    start = messages[0]
    return AsgiAnswer(
        status=start["status"],
        headers={name.decode().lower(): value.decode() for name, value in start.get("headers", [])},
        body=b"".join(m.get("body", b"") for m in messages[1:]),
        messages=messages,
    )


async def asgi_request_abandoned(
    application, method: str, path: str, *, headers: dict[str, str] | None = None, body: bytes = b"",
    leave_after: float = 0.2,
) -> list[dict]:
    """The client sends the request, then hangs up after `leave_after` seconds, whatever came back
    (the server sees `http.disconnect`). Returns what the application sent."""
    messages: list[dict] = []
    sent = False

    async def receive():
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        await asyncio.sleep(leave_after)
        return {"type": "http.disconnect"}

    async def send(message):
        messages.append(message)

    await asyncio.wait_for(application(_scope(method, path, headers or {}, body), receive, send), 30)
    return messages
