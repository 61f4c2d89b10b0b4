"""Benchmark (issue 26): the turn path on PostgreSQL under load, one Conduit process and then two.

64 concurrent clients (wrk `-c64 -t1`, a Lua script counting answers by status) send non-streamed
`POST /v1/chat/completions` turns for `--duration` seconds to Conduit (`manage.py run --workers N`,
DEBUG off, budgets off) on a fresh PostgreSQL database created for the run and dropped after it, with
Redis (cache and channel layer; a database of the bench's own, flushed before each run). The fake
OpenAI-compatible upstream (bench/fakes.py openai) answers at once. Meanwhile:
- every 0.2 s, from a connection of its own to the maintenance database, the number of PostgreSQL
  connections to the bench database (all of them Conduit's: this script's own is elsewhere) — max and
  median, and the server-wide count at that peak against `max_connections`;
- every 0.1 s, `GET /health` on a kept-alive connection: p50/p99/max and any failure.
Then the answers by status (every non-200 counted, 5xx apart), and what was stored (asked once Conduit
has stopped, as it may hold every connection the server allows): every assistant
message should be `complete` (turns of the connections wrk closes when the time is up excepted: they
end `stopped`, or stay `streaming` until the stale-turn sweep if their client left while they were planned).

    .venv/bin/python bench/turns_pg_load.py [--duration 60] [--workers 1,2] [--connections 64]
        [--postgres postgres://postgres@127.0.0.1:5432/postgres] [--redis-url redis://127.0.0.1:6379/8]

Needs `wrk`, a PostgreSQL server where `--postgres`'s user may create databases, and Redis.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import secrets
import statistics
import sys
import threading
import time
from pathlib import Path
from typing import Iterator
from urllib.parse import urlsplit, urlunsplit

import psycopg
import redis

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import common, turn_path  # noqa: E402

EMAIL = "bench-pg@example.com"
PATH = "/v1/chat/completions"


@contextlib.contextmanager
def fresh_database(admin_url: str) -> Iterator[tuple[str, str]]:
    """A new database on `admin_url`'s server, dropped afterwards; yields (its URL, its name)."""
    name = "conduit_bench_" + secrets.token_hex(4)
    with psycopg.connect(admin_url, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    parts = urlsplit(admin_url)
    try:
        yield urlunsplit(parts._replace(path=f"/{name}")), name
    finally:
        with psycopg.connect(admin_url, autocommit=True) as admin:
            admin.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s", [name])
            admin.execute(f'DROP DATABASE IF EXISTS "{name}"')


class Sampler(threading.Thread):
    """Calls `sample()` every `interval` seconds until stopped; keeps what it returns."""

    def __init__(self, interval: float, sample):
        super().__init__(daemon=True)
        self.interval, self.sample = interval, sample
        self.values: list = []
        self.failures: dict[str, int] = {}
        self.halt = threading.Event()

    def run(self) -> None:
        next_at = time.monotonic()
        while not self.halt.is_set():
            try:
                self.values.append(self.sample())
            except Exception as exc:  # noqa: BLE001 - counted and shown, the run goes on
                key = f"{type(exc).__name__}: {str(exc)[:100]}"
                self.failures[key] = self.failures.get(key, 0) + 1
            next_at += self.interval
            self.halt.wait(max(0.0, next_at - time.monotonic()))

    def stop(self) -> None:
        self.halt.set()
        self.join(timeout=10)


def run(args, workers: int, upstream: str, tmp: Path) -> dict:
    redis.Redis.from_url(args.redis_url).flushdb()
    with fresh_database(args.postgres) as (database_url, name):
        env = turn_path.turn_env(tmp, DATABASE_URL=database_url, REDIS_URL=args.redis_url)
        common.prepare_database(env)
        key = turn_path.seed(env, model_url=upstream, emails=[EMAIL])[EMAIL]
        script = common.wrk_post_script(tmp / f"pg-{workers}.lua", body=turn_path.chat_body(),
                                        headers={"Content-Type": "application/json", "Authorization": f"Bearer {key}"})
        log = tmp / f"conduit-{workers}-processes.log"
        with common.conduit(env, workers=workers, log=log) as (base, _supervisor), \
                psycopg.connect(args.postgres, autocommit=True) as watcher:  # fmt: skip
            max_connections = int(watcher.execute("SHOW max_connections").fetchone()[0])
            warm = common.warm(base + PATH, script, duration=3)

            def connections() -> tuple[int, int]:
                row = watcher.execute(
                    "SELECT count(*) FILTER (WHERE datname = %s), count(*) FROM pg_stat_activity"
                    " WHERE pid <> pg_backend_pid() AND backend_type = 'client backend'", [name]).fetchone()  # fmt: skip
                return row[0], row[1]

            health = turn_path.KeptAlive(base, timeout=30)

            def health_check() -> tuple[int, float]:
                status, _, whole, _ = health.get("/health")
                return status, whole * 1000

            pg_sampler, health_sampler = Sampler(0.2, connections), Sampler(0.1, health_check)
            pg_sampler.start()
            health_sampler.start()
            try:
                figures = common.wrk(base + PATH, connections=args.connections, duration=args.duration, script=script,
                                     timeout=60)  # fmt: skip
            finally:
                health_sampler.stop()
                pg_sampler.stop()
                health.close()
            time.sleep(5)  # the turns of the connections wrk closed settle (stopped)
        # Asked once Conduit has stopped: while it runs it may hold every connection the server allows.
        stored = turn_path.stored(env, EMAIL, settle=0)
    held = [own for own, _ in pg_sampler.values]
    peak = max(pg_sampler.values, default=(0, 0))
    health_ms = [ms for status, ms in health_sampler.values]
    health_bad = sum(1 for status, _ in health_sampler.values if status != 200) + sum(health_sampler.failures.values())
    statuses = figures.get("statuses", {})
    return {
        "workers": workers, "wrk": figures, "statuses": statuses,
        "5xx": sum(n for s, n in statuses.items() if s >= 500), "non_200": sum(n for s, n in statuses.items() if s != 200),
        "pg_max": max(held, default=0), "pg_median": statistics.median(held) if held else 0,
        "pg_server_at_peak": peak[1], "max_connections": max_connections, "pg_samples": len(held),
        "pg_failures": pg_sampler.failures,
        "health_p50": common.percentile(health_ms, 0.5), "health_p99": common.percentile(health_ms, 0.99),
        "health_max": max(health_ms, default=float("nan")), "health_polls": len(health_sampler.values),
        "health_bad": health_bad, "health_failures": health_sampler.failures,
        "stored": stored, "answered": statuses.get(200, 0) + warm["statuses"].get(200, 0),
        "cut": args.connections + 2, "log": common.log_summary(log),
        "swept": common.log_count(log, turn_path.SWEEP_LOG),
    }  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--duration", type=float, default=60.0, help="seconds of load per configuration")
    parser.add_argument("--workers", default="1,2", help="Conduit processes, one run each")
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--chunks", type=int, default=5, help="text deltas of the fake model's answer")
    parser.add_argument("--postgres", default="postgres://postgres@127.0.0.1:5432/postgres",
                        help="the maintenance database of the server to create the bench databases on")
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/8", help="a Redis database for the bench: FLUSHED")
    parser.add_argument("--json", help="also write the figures to this file")
    args = parser.parse_args()
    common.print_machine("PostgreSQL + Redis")
    load_before = common.load_average()
    print(f"loadavg before: {load_before}; PostgreSQL at {urlsplit(args.postgres).netloc}, Redis {args.redis_url}",
          flush=True)  # fmt: skip
    results = []
    with common.workdir() as tmp, common.fake("openai", str(args.chunks)) as upstream:
        for workers in [int(w) for w in args.workers.split(",")]:
            result = run(args, workers, upstream, tmp)
            results.append(result)
            print(f"  {workers} process(es): {result['wrk']['rps']:.1f} req/s, statuses {result['statuses']},"
                  f" socket errors {result['wrk']['socket_errors']}, PostgreSQL connections max {result['pg_max']},"
                  f" /health p99 {result['health_p99']:.1f} ms, loadavg {common.load_average()}",
                  file=sys.stderr, flush=True)  # fmt: skip
    load_after = common.load_average()

    print()
    print(f"loadavg before {load_before}, after {load_after}; {args.connections} connections (wrk -t1) for"
          f" {args.duration:g} s per configuration; POST {PATH}, non-streamed; PostgreSQL max_connections"
          f" {results[0]['max_connections'] if results else '?'}")  # fmt: skip
    rows = []
    for r in results:
        w = r["wrk"]
        rows.append([
            r["workers"], f"{w['rps']:.1f}", f"{r['statuses'].get(200, 0) / args.duration:.1f}", f"{w['p50_ms']:.0f}", f"{w['p99_ms']:.0f}", f"{r['statuses'].get(200, 0):,}",
            r["5xx"], r["non_200"], w["socket_errors"], r["pg_max"], f"{r['pg_median']:.0f}", r["pg_server_at_peak"],
            f"{r['health_p50']:.1f}", f"{r['health_p99']:.1f}", f"{r['health_max']:.1f}",
            f"{r['health_bad']}/{r['health_polls']}",
        ])  # fmt: skip
    print(common.table(["processes", "req/s", "200s/s", "p50 ms", "p99 ms", "200s", "5xx", "non-200", "socket errors",
                        "PG conns max", "PG conns median", "PG server-wide at peak", "/health p50 ms",
                        "/health p99 ms", "/health max ms", "/health failed/polls"], rows))  # fmt: skip
    for r in results:
        print()
        if r["non_200"]:
            print(f"{r['workers']} process(es): answers by status {dict(sorted(r['statuses'].items()))}")
        print("\n".join(r["log"]))
        for kind in ("pg_failures", "health_failures"):
            if r[kind]:
                print(f"{r['workers']} process(es): {kind.replace('_', ' ')}: {r[kind]}")
        print("\n".join(turn_path.stored_report(f"Conduit, {r['workers']} process(es)", r["stored"],
                                                answered=r["answered"], cut=r["cut"], swept=r["swept"])))  # fmt: skip
    if args.json:
        Path(args.json).write_text(json.dumps({"machine": common.machine("PostgreSQL + Redis"), "loadavg": [load_before, load_after],
                                               "runs": results}, indent=1, default=str))  # fmt: skip


if __name__ == "__main__":
    main()
