"""Real MCP servers the tests run (as their own processes)."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

NOTES_SERVER = str(Path(__file__).parent / "notes_server.py")


@contextmanager
def notes_over_http(token: str, *options: str, cwd: Path | None = None) -> Iterator[str]:
    """The notes server over streamable HTTP on 127.0.0.1 (`--header-token token`, then `options`; with
    `--sse`, over SSE); yields its URL."""
    process = subprocess.Popen(
        [sys.executable, NOTES_SERVER, "--http", "--header-token", token, *options],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, cwd=cwd,
    )  # fmt: skip
    try:
        port = process.stdout.readline().split()[1]
        yield f"http://127.0.0.1:{port}/{'sse' if '--sse' in options else 'mcp'}"
    finally:
        process.terminate()
        process.wait(timeout=10)
