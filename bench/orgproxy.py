"""Benchmark: the organization proxy against calling the fake Claire upstream directly.

Starts the fake Claire API (own process), Conduit (`manage.py run`, one daphne process, own
process, a fresh SQLite file or $DATABASE_URL) and, for each endpoint, runs the load generator
(own process) first against the upstream call the endpoint makes, then against Conduit, at 1 and
16 connections. The difference is what Conduit adds.

    .venv/bin/python bench/orgproxy.py [--duration 5] [--workers 1] [--cpu-affinity]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import common  # noqa: E402

API_KEY = "test-claire-key-7f3a9c-DO-NOT-LEAK"  # the fake's key (orgproxy/tests/fake_claire.py)
BOT = "bot-1a2b3c4d-0000-4000-8000-00000000000a"
EMAIL = "bench-orgproxy@example.com"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--duration", type=float, default=5.0, help="seconds measured per run")
    parser.add_argument("--workers", type=int, default=1, help="daphne processes")
    parser.add_argument("--connections", default="1,16")
    parser.add_argument("--cpu-affinity", action="store_true", help="pin each daphne process to one CPU")
    parser.add_argument("--json", help="also write the figures to this file")
    args = parser.parse_args()
    levels = [int(c) for c in args.connections.split(",")]
    common.print_machine()

    with common.workdir() as tmp, common.fake("claire") as claire:
        env = common.base_env(tmp, CLAIRE__BASE_URL=claire, CLAIRE__API_KEY=API_KEY)
        common.prepare_database(env)
        user_id = common.create_user(env, EMAIL)
        upstream_user = f"conduit|{user_id}"
        upstream = {"Authorization": f"Bearer {API_KEY}"}
        # A few existing sessions for the list, made through the upstream directly.
        for _ in range(3):
            common.http_json("POST", f"{claire}/m2m/client_sessions",
                             {"bot_id": BOT, "user": {"organization_user_id": upstream_user}}, headers=upstream)
        with common.conduit(env, workers=args.workers, cpu_affinity=args.cpu_affinity) as (base, _process):
            token = common.login(base, EMAIL)
            auth = {"Authorization": f"Bearer {token}"}
            create_body = json.dumps({"bot_id": BOT, "user": {"organization_user_id": "bench-baseline"}})
            cases = [
                ("GET /bots", dict(url=f"{claire}/m2m/organizations/bots", headers=upstream),
                 dict(url=f"{base}/bots", headers=auth)),
                ("GET /session",
                 dict(url=f"{claire}/m2m/client_sessions/?external_user_id={upstream_user}&bot_ids={BOT}"
                          f"&bot_ids=bot-1a2b3c4d-0000-4000-8000-00000000000b", headers=upstream),
                 dict(url=f"{base}/session", headers=auth)),
                ("POST /session",
                 dict(url=f"{claire}/m2m/client_sessions", method="POST", body=create_body,
                      headers={**upstream, "Content-Type": "application/json"}),
                 dict(url=f"{base}/session?bot_id={BOT}", method="POST", headers=auth)),
            ]  # fmt: skip
            rows, figures = [], []
            for name, bare, proxied in cases:
                for connections in levels:
                    # POST /session grows the upstream's session store: cap it.
                    cap = 20_000 if "POST" in name else 200_000
                    b = common.load(**bare, connections=connections, duration=args.duration, max_requests=cap)
                    c = common.load(**proxied, connections=connections, duration=args.duration, max_requests=cap)
                    figures.append({"endpoint": name, "connections": connections, "upstream": b, "conduit": c})
                    rows.append([
                        name, connections, b["rps"], c["rps"], b["p50_ms"], c["p50_ms"],
                        c["p50_ms"] - b["p50_ms"], b["p99_ms"], c["p99_ms"], b["errors"] + c["errors"],
                    ])  # fmt: skip
                    print(f"  {name} c={connections}: upstream {b['rps']:.0f} req/s, conduit {c['rps']:.0f} req/s",
                          file=sys.stderr, flush=True)
    print(common.table(
        ["endpoint", "conns", "upstream req/s", "conduit req/s", "upstream p50 ms", "conduit p50 ms",
         "added p50 ms", "upstream p99 ms", "conduit p99 ms", "errors"], rows))  # fmt: skip
    if args.json:
        Path(args.json).write_text(json.dumps({"machine": common.machine(), "results": figures}, indent=1))


if __name__ == "__main__":
    main()
