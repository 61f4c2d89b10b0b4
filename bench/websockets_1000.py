"""Benchmark: 1,000 simultaneous websocket streams.

Opens `--streams` websockets at once, each starting a turn whose fake-model answer has `--chunks`
text deltas `--delay` seconds apart, and checks every stream: completed, every delta exactly once
and in order. Reports the delay of each delta (fake model sent it → client got it; coalescing
adds up to ASSISTANT_FLUSH_INTERVAL by design), peak RSS of the daphne process(es), and the wall
time. Runs once with one process (in-memory channel layer), then with two processes sharing Redis
($REDIS_URL, default redis://127.0.0.1:6379/7) unless --skip-redis.

    .venv/bin/python bench/websockets_1000.py [--streams 1000] [--chunks 50] [--delay 0.02]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import common, streams  # noqa: E402

EMAIL = "bench-ws@example.com"


async def many(base: str, token: str, slug: str, count: int, timeout: float) -> tuple[list[streams.Stream], float]:
    started = time.monotonic()
    results = await asyncio.gather(*(streams.websocket_turn(base, token, slug, timeout=timeout) for _ in range(count)))
    return list(results), time.monotonic() - started


def run(env: dict[str, str], model: str, *, workers: int, args, label: str) -> list:
    with common.conduit(env, workers=workers) as (base, process):
        token = common.login(base, EMAIL)
        slug = f"bench-ws-{workers}-{int(time.time())}"
        streams.seed_agent(base, token, model, slug)
        # One warm-up turn per worker, so imports and first connections aren't counted.
        asyncio.run(many(base, token, slug, workers * 2, 60))
        results, elapsed = asyncio.run(many(base, token, slug, args.streams, args.timeout))
        rss = [common.rss_kib(pid) // 1024 for pid in common.worker_pids(process)]
    intact = sum(r.intact(args.chunks) for r in results)
    delays = [d for r in results for d in r.delays_ms()]
    errors = sorted({r.error for r in results if r.error})
    print(f"  {label}: {intact}/{len(results)} intact in {elapsed:.1f} s; errors: {errors[:3] or '-'}", file=sys.stderr)
    return [label, f"{intact}/{len(results)}", len(delays), streams.percentile(delays, 0.5),
            streams.percentile(delays, 0.99), max(delays, default=float("nan")), elapsed,
            " + ".join(str(r) for r in rss)]  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--streams", type=int, default=1000)
    parser.add_argument("--chunks", type=int, default=50)
    parser.add_argument("--delay", type=float, default=0.02, help="seconds between the model's deltas")
    parser.add_argument("--timeout", type=float, default=180, help="per stream")
    parser.add_argument("--skip-redis", action="store_true")
    args = parser.parse_args()
    common.print_machine()
    rows = []
    with common.workdir() as tmp, common.fake("anthropic", str(args.chunks), str(args.delay)) as model:
        env = common.base_env(tmp, ANTHROPIC_MAX_RETRIES="0", OUTBOUND_ALLOWED_HOSTS="127.0.0.1")  # the fake model
        env.pop("REDIS_URL", None)
        common.prepare_database(env)
        common.create_user(env, EMAIL)
        rows.append(run(env, model, workers=1, args=args, label="1 process, in-memory layer"))
        if not args.skip_redis:
            redis_url = os.environ.get("REDIS_URL") or "redis://127.0.0.1:6379/7"
            rows.append(run({**env, "REDIS_URL": redis_url}, model, workers=2, args=args, label="2 processes, Redis"))
    print(f"\n{args.streams} simultaneous websocket answers × {args.chunks} deltas, {args.delay * 1000:.0f} ms apart")
    print(common.table(["setup", "intact streams", "deltas", "delay p50 ms", "delay p99 ms", "delay max ms",
                        "wall s", "peak RSS MiB"], rows))  # fmt: skip


if __name__ == "__main__":
    main()
