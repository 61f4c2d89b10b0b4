"""Benchmark: the floor of the serving stack, with no Django and no work — what any request served by
`manage.py run` costs before Conduit's own code runs, next to what uvicorn (the reference
organization server's server) costs for the same.

A constant JSON answer, three ways, each in its own process, wrk at 1 and 16 connections, rounds
alternating: daphne answering on its event loop; daphne through Conduit's WSGI bridge
(`config.http.wsgi_bridge`: one hop to a thread and back, as every plain HTTP request takes); uvicorn on
its loop. Prints req/s and the serving process's CPU per request (from /proc). Compare with
`bench/orgproxy_wrk.py`'s figures of the same run's machine: Conduit's `GET /health` minus the
bridge's floor is Django's share of a request.

    .venv/bin/python bench/serving_floor.py [--rounds 3] [--duration 4]

Needs `wrk` (apt-get install wrk) and bench/requirements.txt (uvicorn).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from config.http.wsgi_bridge import BufferedWSGIMiddleware  # noqa: E402

BODY = b'{"status":"ok"}'


async def loop_app(scope, receive, send):
    if scope["type"] != "http":
        return
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(BODY)).encode())]})  # fmt: skip
    await send({"type": "http.response.body", "body": BODY})


def wsgi_app(environ, start_response):
    start_response("200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(BODY)))])
    return [BODY]


bridge = BufferedWSGIMiddleware(wsgi_app, workers=16)  # manage.py run's WSGI_THREADS default


async def app(scope, receive, send):
    """`/loop`: answered on the event loop; anything else: through the WSGI bridge's thread."""
    if scope["type"] == "http" and scope["path"] == "/loop":
        return await loop_app(scope, receive, send)
    if scope["type"] == "http":
        return await bridge(scope, receive, send)


def main() -> None:
    from bench import common
    from bench.common import cpu_seconds, load_average, server, warm, wrk
    from bench.common import value_range as _range

    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--duration", type=float, default=4.0)
    args = parser.parse_args()
    common.print_machine()
    load_before = load_average()
    env = {**os.environ, "PYTHONPATH": str(common.ROOT)}
    daphne_port, uvicorn_port = common.free_port(), common.free_port()
    daphne = [common.PYTHON, "-m", "daphne", "-b", "127.0.0.1", "-p", str(daphne_port), "-v", "0", "bench.serving_floor:app"]
    uvicorn = [common.PYTHON, "-m", "uvicorn", "bench.serving_floor:loop_app", "--host", "127.0.0.1",
               "--port", str(uvicorn_port), "--no-access-log", "--log-level", "warning"]  # fmt: skip
    sides = {
        "daphne, on its loop": f"http://127.0.0.1:{daphne_port}/loop",
        "daphne, through the WSGI bridge": f"http://127.0.0.1:{daphne_port}/thread",
        "uvicorn, on its loop": f"http://127.0.0.1:{uvicorn_port}/",
    }
    results: dict[tuple[str, int], list[dict]] = {}
    with server(daphne, env, sides["daphne, on its loop"]) as daphne_process, \
            server(uvicorn, env, sides["uvicorn, on its loop"]) as uvicorn_process:  # fmt: skip
        pids = {side: (uvicorn_process if side.startswith("uvicorn") else daphne_process).pid for side in sides}
        for url in sides.values():
            warm(url, None)
        for _round in range(args.rounds):
            for connections in (1, 16):
                for side, url in sides.items():
                    before = cpu_seconds(pids[side])
                    figures = wrk(url, connections=connections, duration=args.duration, script=None)
                    figures["cpu_ms"] = 1000 * (cpu_seconds(pids[side]) - before) / max(figures["requests"], 1)
                    results.setdefault((side, connections), []).append(figures)
    print(f"loadavg before {load_before}, after {load_average()}; {args.rounds} rounds of {args.duration:g} s per cell")
    rows = [
        [side, connections, _range(r["rps"] for r in runs), _range((r["cpu_ms"] for r in runs), digits=2),
         f"{statistics.median(r['cpu_ms'] for r in runs):.2f}", sum(r["errors"] for r in runs)]
        for (side, connections), runs in results.items()
    ]  # fmt: skip
    print(common.table(["server", "conns", "req/s", "CPU ms/request", "median CPU ms/request", "errors"], rows))


if __name__ == "__main__":
    main()
