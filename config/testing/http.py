"""A tiny JSON-over-HTTP client on the standard library, for tests and benchmarks that talk to real
server processes (no Django or pytest needed, so `bench/` can use it too)."""

from __future__ import annotations

import json
import urllib.error
import urllib.request


def http_json(
    method: str,
    url: str,
    body: dict | None = None,
    token: str | None = None,
    *,
    headers: dict[str, str] | None = None,
    timeout: float = 30,
) -> tuple[int, dict]:
    """(status, JSON body or {}) of one request; an error status is returned, not raised."""
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, method=method)
    request.add_header("Content-Type", "application/json")
    for name, value in (headers or {}).items():
        request.add_header(name, value)
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            raw = response.read()
            return response.status, json.loads(raw) if raw else {}
    except urllib.error.HTTPError as error:
        raw = error.read()
        return error.code, json.loads(raw) if raw.startswith(b"{") else {}
