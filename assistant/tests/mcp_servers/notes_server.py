"""A small real MCP server for the orchestrator's tests.

    python notes_server.py                         # stdio
    python notes_server.py --http [--sse] --header-token T   # prints "PORT <n>", serves on 127.0.0.1
        [--record-headers FILE]   # appends each HTTP request's `traceparent` header ("-" if none) to FILE

Its tools: `add`, `whoami` (what the process was started with: argv, the length of NOTES_TOKEN,
its working directory, its pid), `write_note` (writes a file in its working directory), `sleep`, `fail`."""

from __future__ import annotations

import argparse
import json
import os
import socket
import sys

from mcp.server.mcpserver import MCPServer

server = MCPServer("notes")


@server.tool()
def add(a: int, b: int) -> int:
    """Add two numbers."""
    return a + b


@server.tool()
def whoami() -> str:
    """What this server process was started with."""
    token = os.environ.get("NOTES_TOKEN", "")
    return json.dumps({"argv": sys.argv, "token_length": len(token), "cwd": os.getcwd(), "pid": os.getpid()})


@server.tool()
def write_note(name: str, text: str) -> str:
    """Write a note file in the server's working directory."""
    with open(os.path.join(os.getcwd(), name), "w", encoding="utf-8") as handle:
        handle.write(text)
    return f"wrote {name}"


@server.tool()
async def sleep(seconds: float) -> str:
    """Wait, then answer (a slow or hanging tool)."""
    import anyio

    await anyio.sleep(seconds)
    return f"slept {seconds}"


@server.tool()
def fail() -> str:
    """Always fails."""
    raise ValueError("the notes server failed on purpose")


def serve_http(*, sse: bool, token: str, record: str = "") -> None:
    import uvicorn
    from starlette.responses import JSONResponse

    inner = server.sse_app() if sse else server.streamable_http_app()

    async def app(scope, receive, send):  # checks the bearer token a client was configured with
        headers = dict(scope.get("headers") or [])
        if scope["type"] == "http" and record:  # what a client sent on, e.g. its trace context
            with open(record, "a", encoding="utf-8") as handle:
                handle.write(headers.get(b"traceparent", b"-").decode() + "\n")
        if scope["type"] == "http" and token and headers.get(b"authorization") != f"Bearer {token}".encode():
            await JSONResponse({"error": "unauthorized"}, status_code=401)(scope, receive, send)
            return
        await inner(scope, receive, send)

    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(128)  # connections wait in the backlog until uvicorn accepts: no race with the client
    print(f"PORT {sock.getsockname()[1]}", flush=True)
    uvicorn.Server(uvicorn.Config(app, log_level="warning")).run(sockets=[sock])


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--http", action="store_true")
    parser.add_argument("--sse", action="store_true")
    parser.add_argument("--header-token", default="")
    parser.add_argument("--record-headers", default="")
    options = parser.parse_args()
    if options.http:
        serve_http(sse=options.sse, token=options.header_token, record=options.record_headers)
    else:
        server.run()
