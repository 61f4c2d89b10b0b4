"""Benchmark (issue 30): what the Prometheus metrics cost, Conduit with METRICS_ENABLED on against off.

Two `manage.py run` servers of this checkout (one daphne worker each, tracing off: no OTEL_* endpoint),
the same database, differing only in METRICS_ENABLED. Rows: the organization server's two busiest
requests (`GET /bots`, `POST /session`, provider token, fake Claire API in its own process: its fast path)
and a whole `/v1/chat/completions` turn (non-streamed; an organization agent on the fake OpenAI-compatible
upstream, a personal API key). Load: wrk `-t1`, 1 and 16 connections; rounds alternate off, on, off, on…
for each cell so both see the same machine load. Per run: req/s and the worker's CPU per request
(/proc/<pid>/stat). The summary gives each side's range, the on/off ratio of the medians and its range
round by round. The machine is shared and noisy: read the ranges, not one figure.

    .venv/bin/python bench/metrics_cost.py [--rounds 3] [--duration 5] [--connections 1,16]
    .venv/bin/python bench/metrics_cost.py --calls   # instead: the instrumentation's own cost per call

`--calls` times, in one process, the calls a request and a turn make into `observability` (multiprocess
mode, as `manage.py run` serves, and in memory): the part of the cost that the noise of a shared machine
doesn't hide.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import common, turn_path  # noqa: E402
from bench.orgproxy_wrk import lua_script  # noqa: E402
from config.testing.fake_oidc import FakeOIDCProvider  # noqa: E402
from orgproxy.tests.fake_claire import API_KEY, BOT_A  # noqa: E402

EMAIL = "bench-metrics@example.com"
SIDES = ("off", "on")
CALLS = """
import os, timeit, django
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
django.setup()
import observability as o
from assistant.llm.types import Usage
usage = Usage(input_tokens=12, output_tokens=5)
calls = {
    "per HTTP request: http_request_finished": lambda: o.http_request_finished("GET", "/bots", 200, 0.001),
    "per turn: turn_started + turn_finished": lambda: (o.turn_started(), o.turn_finished("openai", "complete", 0.1)),
    "per turn: turn_first_token": lambda: o.turn_first_token("openai", 0.05),
    "per model call: model_call_finished": lambda: o.model_call_finished("anthropic", "m", "ok", usage),
    "per model call: model_cost_added": lambda: o.model_cost_added("anthropic", "m", 0.001),
    "per tool call: tool_call_finished": lambda: o.tool_call_finished(False, 0.01),
    "tracing off: span()": lambda: o.span("x"),
}
for name, call in calls.items():
    seconds = min(timeit.repeat(call, number=20000, repeat=5)) / 20000
    print(f"  {name}: {seconds * 1e6:.2f} us")
"""


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--duration", type=float, default=5.0, help="seconds per wrk run")
    parser.add_argument("--connections", default="1,16")
    parser.add_argument("--calls", action="store_true", help="instead: time the instrumentation's calls")
    args = parser.parse_args()
    if args.calls:
        for multiprocess in (True, False):
            with common.workdir() as tmp:
                env = {k: v for k, v in common.base_env(tmp).items() if k != "PROMETHEUS_MULTIPROC_DIR"}
                env["DEBUG"] = "1"
                if multiprocess:  # (prometheus-client takes even an empty value as multiprocess mode)
                    env["PROMETHEUS_MULTIPROC_DIR"] = str(tmp)
                print(f"{'multiprocess mode' if multiprocess else 'in memory'}:", flush=True)
                subprocess.run([common.PYTHON, "-c", CALLS], cwd=common.ROOT, env=env, check=True)
        return
    levels = [int(c) for c in args.connections.split(",")]
    common.print_machine()
    load_before = common.load_average()

    with common.workdir() as tmp, common.fake("claire") as claire, common.fake("openai", "5") as upstream, \
            FakeOIDCProvider() as provider:  # fmt: skip
        token = provider.mint(sub="auth0|bench-metrics", exp=int(time.time()) + 4 * 3600)
        env = turn_path.turn_env(
            tmp, AUTH0__ISSUER=provider.issuer, AUTH0__AUDIENCE=provider.audience, AUTH0__JWKS_URL=provider.jwks_url,
            CLAIRE__BASE_URL=claire, CLAIRE__API_KEY=API_KEY,
        )  # fmt: skip
        env = {k: v for k, v in env.items() if not k.startswith("OTEL_")}
        common.prepare_database(env)
        key = turn_path.seed(env, model_url=upstream, emails=[EMAIL])[EMAIL]
        rows = [
            ("POST /v1/chat/completions", "/v1/chat/completions", common.wrk_post_script(
                tmp / "v1.lua", body=turn_path.chat_body(),
                headers={"Content-Type": "application/json", "Authorization": f"Bearer {key}"})),
            ("GET /bots", "/bots", lua_script(tmp, "get", method="GET", token=token)),
            ("POST /session", f"/session?bot_id={BOT_A}", lua_script(tmp, "post", method="POST", token=token)),
        ]  # fmt: skip
        results: dict[tuple[str, int, str], list[dict]] = {}
        with common.conduit({**env, "METRICS_ENABLED": "0"}, log=tmp / "off.log") as (off_base, off_process), \
                common.conduit({**env, "METRICS_ENABLED": "1"}, log=tmp / "on.log") as (on_base, on_process):  # fmt: skip
            bases = {"off": off_base, "on": on_base}
            pids = {"off": common.worker_pids(off_process)[0], "on": common.worker_pids(on_process)[0]}
            for side in SIDES:
                for _name, path, script in rows:
                    # The first turn of a process imports the openai SDK (seconds on a loaded machine).
                    common.wrk(bases[side] + path, connections=1, duration=5, script=script, timeout=20)
                    common.warm(bases[side] + path, script, duration=2)
            for round_index in range(args.rounds):
                for name, path, script in rows:
                    for connections in levels:
                        for side in SIDES:
                            cpu_before = common.cpu_seconds(pids[side])
                            figures = common.wrk(bases[side] + path, connections=connections, duration=args.duration,
                                                 script=script)  # fmt: skip
                            time.sleep(0.3)  # what the server still does for the last answers
                            figures["cpu_ms"] = 1000 * (common.cpu_seconds(pids[side]) - cpu_before) / max(
                                figures["requests"], 1
                            )
                            results.setdefault((name, connections, side), []).append(figures)
                            print(f"  round {round_index + 1} {name} c={connections} metrics {side}: "
                                  f"{figures['rps']:.0f} req/s, CPU {figures['cpu_ms']:.2f} ms/request, "
                                  f"errors {figures['errors']}, loadavg {common.load_average()}",
                                  file=sys.stderr, flush=True)  # fmt: skip
    load_after = common.load_average()

    median = statistics.median
    table = []
    for name, _path, _script in rows:
        for connections in levels:
            off, on = results[(name, connections, "off")], results[(name, connections, "on")]
            ratios = [b["rps"] / a["rps"] for a, b in zip(off, on)]
            cpu_ratios = [b["cpu_ms"] / a["cpu_ms"] for a, b in zip(off, on) if a["cpu_ms"]]
            table.append([
                name, connections, common.value_range(r["rps"] for r in off), common.value_range(r["rps"] for r in on),
                f"{median(r['rps'] for r in on) / median(r['rps'] for r in off):.3f}", common.value_range(ratios, digits=3),
                f"{median(r['cpu_ms'] for r in off):.2f}", f"{median(r['cpu_ms'] for r in on):.2f}",
                common.value_range(cpu_ratios, digits=3), sum(r["errors"] for r in off + on),
            ])  # fmt: skip
    print()
    print(f"loadavg before {load_before}, after {load_after}; {args.rounds} rounds of {args.duration:g} s per cell")
    print(common.table(
        ["request", "conns", "off req/s", "on req/s", "on/off (medians)", "on/off per round", "off CPU ms/req",
         "on CPU ms/req", "CPU on/off per round", "errors"], table))  # fmt: skip


if __name__ == "__main__":
    main()
