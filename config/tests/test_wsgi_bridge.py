"""The WSGI bridge of config/asgi.py: responses arrive whole and in order, small ones in one
hand-off, large ones streamed; request bodies reach the application."""

from __future__ import annotations

from config.http.wsgi_bridge import BUFFER_LIMIT, BufferedWSGIMiddleware


def echo_app(environ, start_response):
    size = int(environ.get("QUERY_STRING") or 0)
    body = environ["wsgi.input"].read()
    start_response("201 Created", [("Content-Type", "text/plain"), ("X-Seen", str(len(body)))])
    chunk = 64 * 1024
    return [b"<" + body + b">"] + [b"x" * min(chunk, size - n) for n in range(0, size, chunk)]


async def call(app, *, query: str = "", body: bytes = b"") -> list[dict]:
    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST", "scheme": "http",
             "path": "/", "raw_path": b"/", "query_string": query.encode(), "root_path": "",
             "headers": [(b"host", b"testserver"), (b"content-length", str(len(body)).encode())],
             "client": ("127.0.0.1", 1234), "server": ("127.0.0.1", 80)}  # fmt: skip
    incoming = [{"type": "http.request", "body": body, "more_body": False}]
    sent: list[dict] = []

    async def receive():
        return incoming.pop(0) if incoming else {"type": "http.disconnect"}

    async def send(message):
        sent.append(message)

    await app(scope, receive, send)
    return sent


async def test_a_small_answer_arrives_whole_with_its_status_headers_and_the_request_body():
    sent = await call(BufferedWSGIMiddleware(echo_app, workers=2), body=b"hello")
    assert sent[0]["type"] == "http.response.start" and sent[0]["status"] == 201
    assert (b"x-seen", b"5") in sent[0]["headers"]
    assert b"".join(m.get("body", b"") for m in sent[1:]) == b"<hello>"
    assert sent[-1].get("more_body", False) is False


async def test_an_answer_larger_than_the_buffer_is_streamed_and_arrives_whole_in_order():
    size = 3 * BUFFER_LIMIT + 123
    sent = await call(BufferedWSGIMiddleware(echo_app, workers=2), query=str(size), body=b"big")
    body = b"".join(m.get("body", b"") for m in sent[1:])
    assert body == b"<big>" + b"x" * size
    assert sent[0]["status"] == 201 and sent[-1].get("more_body", False) is False
