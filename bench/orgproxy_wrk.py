"""Benchmark (issue 18): the organization server against the reference FastAPI server, with wrk.

Both sides get the same fake Claire API (own process) and the same fake OpenID provider (RS256
keys, JWKS; in this process, fetched once by each server), and the same provider access token
(what Claire clients send). Conduit: `manage.py run` with its defaults (only the port given),
a fresh SQLite file, DEBUG off. The reference: bench/reference_orgserver.py under uvicorn, one
process. Load: wrk (Debian's, C), one thread, loopback, 1 and 16 connections, the Authorization
header (and the POST) set by a Lua script. Rounds alternate reference, Conduit, reference,
Conduit… for each row, so both sides see the same machine load; the summary gives each side's
range over the rounds and the ratio of their medians (and its range, round by round). With
`--baseline DIR`, Conduit as that checkout has it (e.g. `git worktree add DIR main`, with a `.venv`)
runs as a third side in the same rounds, on its own fresh SQLite file (or `--baseline-database-url`): before and after, compared
under the same load.

    .venv/bin/python bench/orgproxy_wrk.py [--rounds 3] [--duration 5] [--connections 1,16]
    .venv/bin/python bench/orgproxy_wrk.py --baseline ../main-checkout   # also Conduit from that checkout
    DATABASE_URL=postgres://…/a REDIS_URL=redis://…/3 .venv/bin/python bench/orgproxy_wrk.py \
        --baseline ../main-checkout --baseline-database-url postgres://…/b   # the deployment configuration
    .venv/bin/python bench/orgproxy_wrk.py --profile /bots [--duration 8]   # py-spy on Conduit's worker
    .venv/bin/python bench/orgproxy_wrk.py --profile /session --method POST --gil

Needs `wrk` (apt-get install wrk) and bench/requirements.txt (fastapi, uvicorn, pyjwt, httpx).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import common  # noqa: E402
from config.testing.fake_oidc import FakeOIDCProvider  # noqa: E402
from orgproxy.tests.fake_claire import API_KEY, BOT_A  # noqa: E402

SUBJECT = "auth0|bench-orgproxy"
TOKEN_LIFETIME = 4 * 3600

LUA = """
wrk.method = "{method}"
wrk.headers["Authorization"] = "{authorization}"
{body}
"""


# Shared with the other wrk benchmarks (bench/common.py).
load_average, server, cpu_seconds, wrk, warm, _range = (
    common.load_average, common.server, common.cpu_seconds, common.wrk, common.warm, common.value_range,
)


def lua_script(directory: Path, name: str, *, method: str, token: str) -> Path:
    body = 'wrk.body = ""' if method == "POST" else ""
    path = directory / f"{name}.lua"
    path.write_text(LUA.format(method=method, authorization=f"Bearer {token}", body=body))
    return path


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--duration", type=float, default=5.0, help="seconds per wrk run")
    parser.add_argument("--connections", default="1,16")
    parser.add_argument("--json", help="also write every run's figures to this file")
    parser.add_argument("--rows", help="only these rows, e.g. 'POST /session,GET /health' (default: all)")
    parser.add_argument("--baseline", type=Path, help="also run Conduit from this checkout (before/after)")
    parser.add_argument("--baseline-database-url",
                        help="the baseline's own database when DATABASE_URL is PostgreSQL (default: a SQLite file)")
    parser.add_argument("--profile", metavar="PATH", help="instead: profile Conduit's worker (py-spy) under wrk on PATH")
    parser.add_argument("--method", default="GET", help="with --profile")
    parser.add_argument("--gil", action="store_true", help="with --profile: only samples holding the GIL")
    args = parser.parse_args()
    levels = [int(c) for c in args.connections.split(",")]
    common.print_machine()
    load_before = load_average()
    print(f"loadavg before: {load_before}", flush=True)

    with tempfile.TemporaryDirectory(prefix="conduit-bench-") as tmp_name, common.fake("claire") as claire, \
            FakeOIDCProvider() as provider:  # fmt: skip
        tmp = Path(tmp_name)
        token = provider.mint(sub=SUBJECT, exp=int(time.time()) + TOKEN_LIFETIME)
        auth_env = {
            "AUTH0__ISSUER": provider.issuer,
            "AUTH0__AUDIENCE": provider.audience,
            "AUTH0__JWKS_URL": provider.jwks_url,
            "CLAIRE__BASE_URL": claire,
            "CLAIRE__API_KEY": API_KEY,
        }
        env = common.base_env(tmp, **auth_env)
        common.prepare_database(env)
        conduit_port, reference_port, baseline_port = common.free_port(), common.free_port(), common.free_port()
        conduit = f"http://127.0.0.1:{conduit_port}"
        reference = f"http://127.0.0.1:{reference_port}"
        reference_env = {**{k: v for k, v in os.environ.items() if not k.startswith(("CLAIRE__", "AUTH0__"))},
                         **auth_env}  # fmt: skip
        scripts = {
            "GET": lua_script(tmp, "get", method="GET", token=token),
            "POST": lua_script(tmp, "post", method="POST", token=token),
        }
        rows = [
            ("GET /bots", "/bots", scripts["GET"]),
            ("POST /session", f"/session?bot_id={BOT_A}", scripts["POST"]),
            ("GET /health", "/health", None),
        ]
        if args.rows:
            wanted = {name.strip() for name in args.rows.split(",")}
            rows = [row for row in rows if row[0] in wanted]
        conduit_command = [common.PYTHON, "manage.py", "run", "--port", str(conduit_port)]
        reference_command = [
            common.PYTHON, "-m", "uvicorn", "bench.reference_orgserver:app", "--host", "127.0.0.1",
            "--port", str(reference_port), "--no-access-log", "--log-level", "warning",
        ]  # fmt: skip
        sides = [("reference", reference), ("conduit", conduit)]
        baseline_server: contextlib.AbstractContextManager = contextlib.nullcontext()
        if args.baseline:
            baseline = f"http://127.0.0.1:{baseline_port}"
            baseline_database = args.baseline_database_url or f"sqlite:///{tmp / 'baseline.sqlite3'}"
            baseline_env = {**env, "DATABASE_URL": baseline_database}
            baseline_python = str(args.baseline / ".venv" / "bin" / "python")
            subprocess.run([baseline_python, "manage.py", "migrate", "--noinput", "-v0"], cwd=args.baseline,
                           env=baseline_env, check=True, timeout=300)  # fmt: skip
            baseline_command = [baseline_python, "manage.py", "run", "--port", str(baseline_port)]
            baseline_server = server(baseline_command, baseline_env, f"{baseline}/health", cwd=args.baseline)
            sides.append(("baseline", baseline))
        results: dict[tuple[str, int, str], list[dict]] = {}
        if args.profile:
            with server(conduit_command, env, f"{conduit}/health") as supervisor:
                profile(supervisor, conduit + args.profile.replace("{bot}", BOT_A), scripts[args.method], args)
            return
        with server(conduit_command, env, f"{conduit}/health") as conduit_supervisor, \
                baseline_server as baseline_supervisor, \
                server(reference_command, reference_env, f"{reference}/health") as reference_process:  # fmt: skip
            # The process whose CPU each side spends (Conduit's: its one daphne worker).
            pids = {"conduit": common.worker_pids(conduit_supervisor)[0], "reference": reference_process.pid}
            if baseline_supervisor is not None:
                pids["baseline"] = common.worker_pids(baseline_supervisor)[0]
            for _side, base in sides:
                for _name, path, script in rows:
                    warm(base + path, script)
            for round_index in range(args.rounds):
                for name, path, script in rows:
                    for connections in levels:
                        for side, base in sides:
                            cpu_before = cpu_seconds(pids[side])
                            figures = wrk(base + path, connections=connections, duration=args.duration, script=script)
                            figures["cpu_ms"] = 1000 * (cpu_seconds(pids[side]) - cpu_before) / max(figures["requests"], 1)
                            results.setdefault((name, connections, side), []).append(figures)
                            print(f"  round {round_index + 1} {name} c={connections} {side}: {figures['rps']:.0f} req/s,"
                                  f" p50 {figures['p50_ms']:.2f} ms, p99 {figures['p99_ms']:.2f} ms,"
                                  f" CPU {figures['cpu_ms']:.2f} ms/request,"
                                  f" errors {figures['errors']}", file=sys.stderr, flush=True)  # fmt: skip
    load_after = load_average()

    table_rows = []
    for name, _path, _script in rows:
        for connections in levels:
            ref = results[(name, connections, "reference")]
            con = results[(name, connections, "conduit")]
            ratios = [c["rps"] / r["rps"] for r, c in zip(ref, con)]
            ref_median = statistics.median(r["rps"] for r in ref)
            con_median = statistics.median(c["rps"] for c in con)
            row = [
                name, connections, _range(r["rps"] for r in ref), _range(c["rps"] for c in con),
                f"{con_median / ref_median:.2f}", _range(ratios, digits=2),
                f"{statistics.median(c['p50_ms'] for c in con):.2f}", f"{statistics.median(c['p99_ms'] for c in con):.2f}",
                f"{statistics.median(r['cpu_ms'] for r in ref):.2f}", f"{statistics.median(c['cpu_ms'] for c in con):.2f}",
                sum(x["errors"] for x in ref + con + results.get((name, connections, "baseline"), [])),
            ]  # fmt: skip
            if args.baseline:
                base = results[(name, connections, "baseline")]
                base_ratios = [c["rps"] / b["rps"] for b, c in zip(base, con)]
                row[4:4] = [_range(b["rps"] for b in base),
                            f"{con_median / statistics.median(b['rps'] for b in base):.2f}", _range(base_ratios, digits=2)]  # fmt: skip
            table_rows.append(row)
    print()
    print(f"loadavg before {load_before}, after {load_after}; {args.rounds} rounds of {args.duration:g} s per cell")
    headers = ["request", "conns", "reference req/s", "Conduit req/s", "ratio (medians)", "ratio per round",
               "Conduit p50 ms", "Conduit p99 ms", "reference CPU ms/req", "Conduit CPU ms/req", "errors"]  # fmt: skip
    if args.baseline:
        headers[4:4] = ["baseline req/s", "vs baseline (medians)", "vs baseline per round"]
    print(common.table(headers, table_rows))
    for connections in levels:
        if ("GET /health", connections, "conduit") not in results:
            break
        health = [c["rps"] for c in results[("GET /health", connections, "conduit")]]
        for name in ("GET /bots", "POST /session"):
            if (name, connections, "conduit") not in results:
                continue
            mine = [c["rps"] for c in results[(name, connections, "conduit")]]
            shares = [m / h for m, h in zip(mine, health)]
            print(f"Conduit {name} / Conduit GET /health at {connections} conns: "
                  f"{statistics.median(mine) / statistics.median(health):.2f} (per round {_range(shares, digits=2)})")  # fmt: skip
    if args.json:
        Path(args.json).write_text(json.dumps({
            "machine": common.machine(), "loadavg": [load_before, load_after],
            "runs": [{"request": k[0], "connections": k[1], "side": k[2], "rounds": v} for k, v in results.items()],
        }, indent=1))  # fmt: skip


def profile(supervisor: subprocess.Popen, url: str, script: Path, args) -> None:
    from bench.profile import report

    warm(url, script)
    (pid,) = common.worker_pids(supervisor)
    connections = int(args.connections.split(",")[-1])
    raw = Path(tempfile.mkdtemp(prefix="conduit-profile-")) / "profile.txt"
    py_spy = str(Path(sys.executable).parent / "py-spy")
    command = [py_spy, "record", "--pid", str(pid), "--duration", str(int(args.duration)), "--format", "raw",
               "--output", str(raw), "--nonblocking", "--rate", "200", *(["--gil"] if args.gil else [])]  # fmt: skip
    spy = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(0.5)
    figures = wrk(url, connections=connections, duration=args.duration - 1, script=script)
    spy.wait(timeout=args.duration + 60)
    print(f"{url} c={connections}: {figures}")
    report(raw.read_text(), 45)


if __name__ == "__main__":
    main()
