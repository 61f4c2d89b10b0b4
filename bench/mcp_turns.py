"""Benchmark (issue 26): how long a websocket turn of an agent with a stdio MCP server waits before its
first model call, warm (the process's pool kept the server from an earlier turn) and cold (a server
started for the turn, as before the pool: ASSISTANT_MCP_POOL_SIZE=0), against the same agent without
tools.

Two Conduit processes (`manage.py run`, one worker each, DEBUG off, SQLite, budgets off) on one database:
A with the defaults, B with ASSISTANT_MCP_POOL_SIZE=0. Organization agents on an `anthropic` config whose
base URL is the stamping fake model (bench/fakes.py anthropic, no delay): `bench-plain` without tools,
`bench-mcp` with an organization integration running the tests' stdio notes server
(assistant/tests/mcp_servers/notes_server.py: a Python process importing the `mcp` package, as real
Python MCP servers do). Each round, on one socket per process, a new session's first turn on each side
in a rotating order: A plain, A mcp (warm: A's first MCP turn, timed apart, started its server), B mcp
(cold); after `--warmups` rounds, `--turns` timed.

The clock starts when the client sends its `start` frame. "model request" is the moment the fake model
began its answer (its first text delta carries `time.monotonic()`, one clock for every process on
Linux): everything before the model call counts (planning the turn, the tools), the answer's relay
does not. "first text" is when that delta reached the client. Then how many notes server processes
each Conduit ran, and that none is left once both have stopped.

    .venv/bin/python bench/mcp_turns.py [--turns 30] [--warmups 2]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import common, turn_path  # noqa: E402

EMAIL = "bench-mcp@example.com"
NOTES = str(common.ROOT / "assistant" / "tests" / "mcp_servers" / "notes_server.py")

_SEED = """
from accounts.models import User
from agents.models import AIAgent, Integration, LLMProviderConfig
config = LLMProviderConfig.objects.create(name="Fake model", provider="anthropic", model="claude-test-1",
                                          base_url={model_url!r}, api_key="sk-fake", max_tokens=512)
AIAgent.objects.create(name="Plain", slug="bench-plain", system_prompt_text="Be brief.", llm_config=config)
agent = AIAgent.objects.create(name="With MCP", slug="bench-mcp", system_prompt_text="Be brief.", llm_config=config)
agent.integrations.add(Integration.objects.create(name="notes", provider="custom",
                                                  mcp_server={{"command": {python!r}, "args": [{notes!r}]}}))
User.objects.create_user(email={email!r}, password={password!r}, name="Bench")
"""


class Turns:
    """New sessions' first turns on one websocket; `one(slug)` times start → model request and → first text."""

    def __init__(self, base: str, token: str):
        url = base.replace("http://", "ws://") + "/ws/assistant/"
        self.socket = turn_path.WebSocket(url, origin=base, subprotocols=["jwt", token], timeout=60)

    def one(self, slug: str) -> tuple[float, float]:
        started = time.monotonic()
        self.socket.send_json({"type": "start", "agent": slug, "message": "Hello"})
        model = first = None
        while True:
            frame = self.socket.recv_json()
            if frame["type"] == "text_delta" and first is None:
                first = time.monotonic() - started
                model = float(frame["text"].split(";")[0].split(":")[1]) - started  # "<index>:<moment sent>;"
            elif frame["type"] == "error":
                raise RuntimeError(f"{slug}: {frame}")
            elif frame["type"] == "result":
                if frame.get("status") != "complete" or first is None:
                    raise RuntimeError(f"{slug}: {frame}")
                return model, first

    def close(self) -> None:
        self.socket.close()


def notes_servers() -> int:
    """Running notes server processes (of this checkout)."""
    count = 0
    for pid in filter(str.isdigit, (p.name for p in Path("/proc").iterdir())):
        try:
            if NOTES.encode() in Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0"):
                count += 1
        except OSError:
            continue
    return count


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--turns", type=int, default=30, help="timed rounds (each: plain, warm, cold)")
    parser.add_argument("--warmups", type=int, default=2, help="untimed rounds first")
    args = parser.parse_args()
    common.print_machine()
    load_before = common.load_average()
    before = notes_servers()

    with common.workdir() as tmp, common.fake("anthropic", "3", "0") as model_url:
        env = common.base_env(tmp, BUDGET_USER_MONTHLY_TOKENS="0", BUDGET_USER_MONTHLY_COST="0")
        common.prepare_database(env)
        common.manage(env, "shell", "-c", _SEED.format(model_url=model_url, python=common.PYTHON, notes=NOTES,
                                                       email=EMAIL, password=common.PASSWORD))  # fmt: skip
        timings: dict[str, list[tuple[float, float]]] = {"A plain": [], "A mcp": [], "B mcp": []}
        first_warm_side: tuple[float, float] | None = None
        with common.conduit(env, log=tmp / "a.log") as (base_a, _a), \
                common.conduit({**env, "ASSISTANT_MCP_POOL_SIZE": "0"}, log=tmp / "b.log") as (base_b, _b):  # fmt: skip
            token = common.login(base_a, EMAIL)
            a, b = Turns(base_a, token), Turns(base_b, token)
            try:
                sides = {"A plain": (a, "bench-plain"), "A mcp": (a, "bench-mcp"), "B mcp": (b, "bench-mcp")}
                order = list(sides)
                for index in range(args.warmups + args.turns):
                    if index == 0:
                        first_warm_side = a.one("bench-mcp")  # A's first: its server starts
                    # The sides take turns in a rotating order: a cold turn's server, closing after it,
                    # must not always slow the same side down.
                    order = order[1:] + order[:1]
                    figures = {name: sides[name][0].one(sides[name][1]) for name in order}
                    if index >= args.warmups:
                        for name, value in figures.items():
                            timings[name].append(value)
                time.sleep(1)  # B's last server closes
                during = notes_servers() - before  # A's warm one (B's close with their turns)
            finally:
                a.close()
                b.close()
            logs = [line for name in ("a.log", "b.log") for line in common.log_summary(tmp / name)]
        time.sleep(1)
        after = notes_servers() - before

    def p(values: list[float], fraction: float) -> float:
        return common.percentile(values, fraction) * 1000

    plain = p([m for m, _ in timings["A plain"]], 0.5)
    labels = {"A plain": "no tools (A)", "A mcp": "stdio MCP server, warm (A: pool)",
              "B mcp": "stdio MCP server, cold (B: ASSISTANT_MCP_POOL_SIZE=0)"}  # fmt: skip
    rows = []
    for name, values in timings.items():
        models, firsts = [m for m, _ in values], [f for _, f in values]
        rows.append([
            labels[name], len(values), f"{p(models, 0.5):.1f}", f"{p(models, 0.9):.1f}", f"{max(models) * 1000:.1f}",
            f"{p(models, 0.5) - plain:+.1f}", f"{p(firsts, 0.5):.1f}",
        ])  # fmt: skip
    print()
    print(f"loadavg before {load_before}, after {common.load_average()}; {args.turns} rounds after {args.warmups}"
          " warm-ups, each a new session's first turn on A (plain, MCP) and B (MCP)")  # fmt: skip
    print("Turn start (client's start frame) → the model's request reached the fake model")
    print(common.table(["agent", "turns", "p50 ms", "p90 ms", "max ms", "added over no tools (p50)",
                        "first text p50 ms"], rows))  # fmt: skip
    if first_warm_side is not None:
        print(f"A's first MCP turn (its server started then): {first_warm_side[0] * 1000:.0f} ms to the model request")
    print(f"notes server processes running after the rounds: {during} (A keeps one; B's close with their turns);"
          f" after both stopped: {after}")
    print("\n".join(logs))


if __name__ == "__main__":
    main()
