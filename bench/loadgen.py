"""A small HTTP/1.1 load generator on raw asyncio sockets, run in its own process.

Each of `--connections` keep-alive connections sends one request, reads the whole answer, and sends
the next, for `--duration` seconds after `--warmup` seconds (capped at `--max-requests`). It prints
one JSON line: requests, errors (non-2xx or a broken connection), requests/s, and latency
percentiles in milliseconds. Nothing here parses JSON or allocates per byte, so on loopback the
numbers are about the server.

    python bench/loadgen.py --url http://127.0.0.1:8000/bots -H "Authorization: Bearer …" -c 16 -d 5
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from urllib.parse import urlsplit


def percentile(sorted_values: list[float], fraction: float) -> float:
    if not sorted_values:
        return float("nan")
    index = min(len(sorted_values) - 1, max(0, round(fraction * (len(sorted_values) - 1))))
    return sorted_values[index]


def build_request(method: str, url: str, headers: list[str], body: bytes) -> tuple[str, int, bytes]:
    parts = urlsplit(url)
    target = parts.path or "/"
    if parts.query:
        target += "?" + parts.query
    lines = [f"{method} {target} HTTP/1.1", f"Host: {parts.hostname}:{parts.port}", "Connection: keep-alive"]
    lines += headers
    if body or method in {"POST", "PUT", "PATCH"}:
        lines.append(f"Content-Length: {len(body)}")
    raw = ("\r\n".join(lines) + "\r\n\r\n").encode() + body
    return parts.hostname, parts.port, raw


async def read_response(reader: asyncio.StreamReader) -> int:
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head[9:12])
    lower = head.lower()
    at = lower.find(b"content-length:")
    if at >= 0:
        end = lower.find(b"\r\n", at)
        length = int(lower[at + 15 : end])
        if length:
            await reader.readexactly(length)
    elif b"transfer-encoding: chunked" in lower:
        while True:
            size = int((await reader.readuntil(b"\r\n")).split(b";")[0], 16)
            await reader.readexactly(size + 2)
            if size == 0:
                break
    elif status not in (204, 304):
        raise ConnectionError("answer without length")
    if b"connection: close" in lower:
        raise ConnectionResetError("server closed the connection")
    return status


async def worker(host, port, raw, state) -> None:
    reader = writer = None
    while time.perf_counter() < state["end"] and state["sent"] < state["max"]:
        try:
            if writer is None:
                reader, writer = await asyncio.open_connection(host, port)
            state["sent"] += 1
            started = time.perf_counter()
            writer.write(raw)
            status = await asyncio.wait_for(read_response(reader), timeout=state["timeout"])
            finished = time.perf_counter()
            if started >= state["measure_from"]:
                if 200 <= status < 300:
                    state["latencies"].append(finished - started)
                else:
                    state["errors"] += 1
                    state["statuses"][status] = state["statuses"].get(status, 0) + 1
        except (OSError, asyncio.IncompleteReadError, asyncio.TimeoutError, ConnectionError, ValueError) as exc:
            state["errors"] += 1
            key = type(exc).__name__
            state["statuses"][key] = state["statuses"].get(key, 0) + 1
            if writer is not None:
                writer.close()
            reader = writer = None
    if writer is not None:
        writer.close()


async def run(args) -> dict:
    body = args.body.encode()
    host, port, raw = build_request(args.method, args.url, args.header, body)
    start = time.perf_counter()
    state = {
        "measure_from": start + args.warmup,
        "end": start + args.warmup + args.duration,
        "sent": 0,
        "max": args.max_requests,
        "timeout": args.timeout,
        "latencies": [],
        "errors": 0,
        "statuses": {},
    }
    await asyncio.gather(*(worker(host, port, raw, state) for _ in range(args.connections)))
    elapsed = time.perf_counter() - state["measure_from"]
    latencies = sorted(state["latencies"])
    return {
        "connections": args.connections,
        "requests": len(latencies),
        "errors": state["errors"],
        "error_kinds": {str(k): v for k, v in state["statuses"].items()},
        "rps": len(latencies) / elapsed if elapsed > 0 else 0.0,
        "p50_ms": percentile(latencies, 0.50) * 1000,
        "p90_ms": percentile(latencies, 0.90) * 1000,
        "p99_ms": percentile(latencies, 0.99) * 1000,
        "max_ms": (latencies[-1] * 1000) if latencies else float("nan"),
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", required=True)
    parser.add_argument("--method", default="GET")
    parser.add_argument("-H", "--header", action="append", default=[])
    parser.add_argument("--body", default="")
    parser.add_argument("-c", "--connections", type=int, default=1)
    parser.add_argument("-d", "--duration", type=float, default=5.0)
    parser.add_argument("--warmup", type=float, default=1.0)
    parser.add_argument("--max-requests", type=int, default=1_000_000)
    parser.add_argument("--timeout", type=float, default=10.0)
    args = parser.parse_args(argv)
    print(json.dumps(asyncio.run(run(args))))
    sys.stdout.flush()


if __name__ == "__main__":
    main()
