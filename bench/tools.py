"""What an agent's tools add to a server-side turn: one sandboxed command (bubblewrap start to exit),
the same command without a sandbox, and opening then closing the turn's tools with one MCP server,
cold (ASSISTANT_MCP_POOL_SIZE=0: stdio, a process started per turn; streamable HTTP, a connection per
turn) and warm (the pool's connection of the previous round: assistant/tools/mcp_pool.py).

    python bench/tools.py [--rounds 20]

Prints p50 / p90 / max in milliseconds. Runs in this process (no Conduit server): these are the
costs a turn pays before and around its model calls."""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
os.environ.setdefault("DEBUG", "1")

import django  # noqa: E402

django.setup()

from django.conf import settings  # noqa: E402

from assistant.engine import ToolCall  # noqa: E402
from assistant.tools.mcp import parse_mcp_config  # noqa: E402
from assistant.tools.sandbox import SandboxLimits, run_sandboxed, sandbox_unavailable_reason  # noqa: E402
from assistant.tools.mcp_pool import mcp_pool_close  # noqa: E402
from assistant.tools.toolset import ToolSetup, open_agent_tools  # noqa: E402

NOTES = str(ROOT / "assistant" / "tests" / "mcp_servers" / "notes_server.py")


def row(name: str, samples: list[float]) -> str:
    ordered = sorted(samples)
    p90 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.9))]
    return f"| {name:<46} | {len(samples):>6} | {statistics.median(ordered):>8.1f} | {p90:>8.1f} | {ordered[-1]:>8.1f} |"


async def timed(rounds: int, make) -> list[float]:
    samples = []
    for _ in range(rounds):
        started = time.perf_counter()
        await make()
        samples.append((time.perf_counter() - started) * 1000)
    return samples


async def main(rounds: int) -> None:
    reason = sandbox_unavailable_reason()
    if reason:
        sys.exit(f"no sandbox here: {reason}")
    workspace = Path(tempfile.mkdtemp(prefix="bench-tools-"))
    workspace.chmod(0o755)
    limits = SandboxLimits.from_settings()

    async def plain() -> None:
        process = await asyncio.create_subprocess_exec("/bin/sh", "-c", "echo hi", stdout=asyncio.subprocess.PIPE)
        await process.communicate()

    async def sandboxed() -> None:
        await run_sandboxed(workspace, "echo hi", limits)

    http = subprocess.Popen([sys.executable, NOTES, "--http"], stdout=subprocess.PIPE, text=True)
    port = http.stdout.readline().split()[1]
    try:
        specs = {
            "stdio": parse_mcp_config({"notes": {"command": sys.executable, "args": [NOTES]}}),
            "http": parse_mcp_config({"notes": {"type": "http", "url": f"http://127.0.0.1:{port}/mcp"}}),
        }

        def opening(kind: str, *, warm: bool):
            async def run() -> None:
                settings.ASSISTANT_MCP_POOL_SIZE = 32 if warm else 0
                async with open_agent_tools(ToolSetup(mcp_specs=tuple(specs[kind]))) as tools:
                    outcome = await tools.run(ToolCall("c", "notes__add", {"a": 1, "b": 2}))
                    assert outcome.content == "3", outcome

            return run

        async def warmed(kind: str) -> list[float]:
            await opening(kind, warm=True)()  # the first round starts it
            samples = await timed(rounds, opening(kind, warm=True))
            await mcp_pool_close()
            return samples

        print(f"| {'what':<46} | {'rounds':>6} | {'p50 ms':>8} | {'p90 ms':>8} | {'max ms':>8} |")
        print(f"|{'-' * 48}|{'-' * 8}|{'-' * 10}|{'-' * 10}|{'-' * 10}|")
        print(row("sh -c 'echo hi', no sandbox", await timed(rounds, plain)))
        print(row("sh -c 'echo hi' in bubblewrap (run_shell)", await timed(rounds, sandboxed)))
        print(row("open tools + 1 call + close: stdio, cold", await timed(rounds, opening("stdio", warm=False))))
        print(row("open tools + 1 call + close: stdio, warm", await warmed("stdio")))
        print(row("open tools + 1 call + close: HTTP, cold", await timed(rounds, opening("http", warm=False))))
        print(row("open tools + 1 call + close: HTTP, warm", await warmed("http")))
    finally:
        http.terminate()
        http.wait(timeout=10)


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=20)
    asyncio.run(main(parser.parse_args().rounds))
