"""Benchmark: relaying a streamed model answer, against reading the fake model directly.

1. First-token latency: sequential turns; for each, the time from the fake model sending its first
   text delta to the client receiving the frame that carries it (websocket, SSE, and the fake
   model read directly). Added = Conduit minus direct.
2. Relay throughput: `--streams` concurrent turns of `--chunks` deltas each, the model sending as
   fast as it can; deltas received per second (every delta checked: all there, once, in order).

    .venv/bin/python bench/streaming.py [--turns 40] [--streams 20] [--chunks 500]
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import common, streams  # noqa: E402

EMAIL = "bench-streaming@example.com"
SLUG = "bench-agent"


async def latency(run_one, turns: int, chunks: int) -> dict:
    firsts, broken = [], 0
    for _ in range(turns):
        stream = await run_one()
        if not stream.intact(chunks):
            broken += 1
            continue
        firsts.append(stream.delays_ms()[0])
    return {"p50_ms": streams.percentile(firsts, 0.5), "p99_ms": streams.percentile(firsts, 0.99), "broken": broken}


async def throughput(run_one, count: int, chunks: int) -> dict:
    started = time.monotonic()
    results = await asyncio.gather(*(run_one() for _ in range(count)))
    elapsed = time.monotonic() - started
    intact = sum(r.intact(chunks) for r in results)
    deltas = sum(len(r.deltas) for r in results)
    frames = sum(r.frames for r in results)
    errors = sorted({r.error for r in results if r.error})[:3]
    return {"deltas_per_s": deltas / elapsed, "frames_per_s": frames / elapsed, "intact": intact,
            "streams": count, "seconds": elapsed, "errors": errors}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--turns", type=int, default=40, help="sequential turns for first-token latency")
    parser.add_argument("--streams", type=int, default=20, help="concurrent turns for throughput")
    parser.add_argument("--chunks", type=int, default=500, help="text deltas per answer (throughput)")
    args = parser.parse_args()
    common.print_machine()
    latency_chunks = 5
    with common.workdir() as tmp:
        with common.fake("anthropic", str(latency_chunks), "0.01") as model:
            # The user's own agents name the fake model on 127.0.0.1: staff allow that host.
            env = common.base_env(
                tmp, CODE_ASSISTANCE_AGENT=SLUG, ANTHROPIC_MAX_RETRIES="0", OUTBOUND_ALLOWED_HOSTS="127.0.0.1"
            )
            common.prepare_database(env)
            common.create_user(env, EMAIL)
            streams.seed_organization_agent(env, model, SLUG)
            with common.conduit(env) as (base, _process):
                token = common.login(base, EMAIL)
                streams.seed_agent(base, token, model, SLUG + "-own")
                lat = {
                    "direct": asyncio.run(latency(lambda: streams.direct_turn(model), args.turns, latency_chunks)),
                    "websocket": asyncio.run(latency(lambda: streams.websocket_turn(base, token, SLUG + "-own"), args.turns, latency_chunks)),
                    "SSE": asyncio.run(latency(lambda: streams.sse_turn(base, token), args.turns, latency_chunks)),
                }  # fmt: skip
        # A model as fast as it can be: the relay is the bottleneck.
        with common.fake("anthropic", str(args.chunks), "0") as model:
            streams.seed_organization_agent(env, model, SLUG + "-fast-org")
            with common.conduit(env) as (base, _process):
                token = common.login(base, EMAIL)
                streams.seed_agent(base, token, model, SLUG + "-fast")
                env_slug = SLUG + "-fast"
                thr = {
                    "direct": asyncio.run(throughput(lambda: streams.direct_turn(model), args.streams, args.chunks)),
                    "websocket": asyncio.run(throughput(lambda: streams.websocket_turn(base, token, env_slug), args.streams, args.chunks)),
                }  # fmt: skip
            # SSE answers with the CODE_ASSISTANCE_AGENT: point it at the fast organization agent.
            with common.conduit({**env, "CODE_ASSISTANCE_AGENT": SLUG + "-fast-org"}) as (base, _process):
                token = common.login(base, EMAIL)
                thr["SSE"] = asyncio.run(throughput(lambda: streams.sse_turn(base, token), args.streams, args.chunks))
    print(f"\nFirst token: fake model sends it → client has it ({args.turns} sequential turns each)")
    rows = [[name, v["p50_ms"], v["p99_ms"], v["p50_ms"] - lat["direct"]["p50_ms"], v["broken"]] for name, v in lat.items()]
    print(common.table(["path", "p50 ms", "p99 ms", "added p50 ms", "broken turns"], rows))
    print(f"\nRelay throughput: {args.streams} concurrent answers × {args.chunks} deltas, one process")
    rows = [[name, v["deltas_per_s"], v["frames_per_s"], f"{v['intact']}/{v['streams']}", v["seconds"],
             "; ".join(v["errors"]) or "-"] for name, v in thr.items()]  # fmt: skip
    print(common.table(["path", "deltas/s", "frames/s", "intact", "seconds", "errors"], rows))


if __name__ == "__main__":
    main()
