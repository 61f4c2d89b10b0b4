"""The two model adapters side by side: the same answers (N text deltas) streamed through
`agent_loop` from the fake Anthropic and the fake Chat Completions API (each in its own process),
through the real SDKs, in this process, with no Conduit server in between.

    python bench/providers.py [--answers 200] [--chunks 200] [--concurrency 1 8]

Prints, per provider and concurrency: answers/s, the client process's CPU per text delta (what
an adapter costs a serving process) and the time to the first delta (p50)."""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
os.environ.setdefault("SECRET_KEY", "bench-only-secret-key-0123456789-0123456789-0123456789")

import django  # noqa: E402

django.setup()

from assistant.engine import LoopRequest, ModelSettings, TextDelta, agent_loop  # noqa: E402
from bench import common  # noqa: E402


async def one_answer(model: ModelSettings) -> tuple[int, float]:
    started = time.monotonic()
    first = None
    deltas = 0
    async for event in agent_loop(LoopRequest(model=model, messages=[{"role": "user", "content": "Go"}])):
        if isinstance(event, TextDelta):
            deltas += 1
            if first is None:
                first = time.monotonic() - started
    return deltas, first or 0.0


async def run(model: ModelSettings, answers: int, concurrency: int) -> dict:
    await one_answer(model)  # warm up: the pooled client and its connection
    queue = list(range(answers))
    firsts: list[float] = []
    deltas = 0

    async def worker():
        nonlocal deltas
        while queue:
            queue.pop()
            count, first = await one_answer(model)
            deltas += count
            firsts.append(first)

    cpu, wall = time.process_time(), time.monotonic()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    cpu, wall = time.process_time() - cpu, time.monotonic() - wall
    return {
        "answers/s": answers / wall,
        "deltas/s": deltas / wall,
        "cpu µs/delta": cpu / deltas * 1e6,
        "first delta p50 ms": statistics.median(firsts) * 1000,
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--answers", type=int, default=200)
    parser.add_argument("--chunks", type=int, default=200)
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 8])
    options = parser.parse_args()
    common.print_machine()
    rows = []
    with common.fake("anthropic", str(options.chunks), "0") as claude, common.fake("openai", str(options.chunks)) as gpt:
        models = {
            "anthropic": ModelSettings(model="claude-test-1", api_key="k", base_url=claude, max_tokens=64),
            "openai": ModelSettings(model="gpt-test-1", api_key="k", base_url=gpt, max_tokens=64, provider="openai"),
        }
        for concurrency in options.concurrency:
            for name, model in models.items():
                figures = asyncio.run(run(model, options.answers, concurrency))
                rows.append([name, concurrency, *figures.values()])
    print(common.table(["provider", "concurrent", "answers/s", "deltas/s", "cpu µs/delta", "first delta p50 ms"], rows))


if __name__ == "__main__":
    main()
