"""Benchmark (issue 26): the turn path, Conduit's `/v1/chat/completions` against LiteLLM's proxy, with wrk.

Both sides stand in front of the same fake OpenAI-compatible upstream (bench/fakes.py openai, its own
process: no delay, kept-alive connections, TCP_NODELAY; ~7,500 answers/s, so never the bottleneck).
Conduit: `manage.py run` defaults (one daphne process), a fresh SQLite file (or `$DATABASE_URL`, and
`$REDIS_URL` if set), DEBUG off, budgets off, the per-user turn limit out of the way; an organization
agent on an organization-wide `openai` LLM config whose base URL is the fake; a user's personal API key
(`cdk_…`). Every request is a whole turn: a session, the user's message, the model call, the stored
answer. LiteLLM: `litellm[proxy]` (bench/requirements-litellm.txt) in its own virtualenv, one uvicorn
worker, no database, a master key, one model on the fake. Same body on both sides:
`{"model": "bench-agent", "messages": [{"role": "user", "content": "Hello"}]}`, non-streamed.

Load: wrk `-t1` (a Lua script for the POST, the bearer key, and a count of answers by status), 1 and 16
connections, rounds alternating LiteLLM, Conduit (, baseline)… after a warm-up of each side. Per run:
req/s, p50/p99, non-2xx answers and socket errors, and the CPU per request of the serving process
(utime + stime from /proc/<pid>/stat before and after, over the requests done: Conduit's daphne
worker, LiteLLM's uvicorn process). At the end, what Conduit stored: sessions, messages, assistant
messages by status (asked with `manage.py shell -c` of the same database). wrk's connections still
waiting when a run ends are closed, and Conduit stops those turns (`stopped`): at most one per
connection per run.

    .venv/bin/python bench/turns_wrk.py [--rounds 3] [--duration 10] [--connections 1,16]
    .venv/bin/python bench/turns_wrk.py --baseline ../before   # also Conduit from that checkout (with its .venv)
    DATABASE_URL=postgres://…/a REDIS_URL=redis://…/3 .venv/bin/python bench/turns_wrk.py \\
        --baseline ../before --baseline-database-url postgres://…/b

Needs `wrk` (apt-get install wrk); LiteLLM is installed on first use into bench/.litellm-venv (PyPI).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import secrets
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import common, turn_path  # noqa: E402

EMAIL = "bench-turns@example.com"
PATH = "/v1/chat/completions"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--duration", type=float, default=10.0, help="seconds per wrk run")
    parser.add_argument("--warmup", type=float, default=3.0, help="seconds of wrk (2 connections) per side first")
    parser.add_argument("--connections", default="1,16")
    parser.add_argument("--chunks", type=int, default=5, help="text deltas of the fake model's answer")
    parser.add_argument("--litellm-venv", type=Path, default=turn_path.LITELLM_VENV,
                        help="LiteLLM's virtualenv (created with bench/requirements-litellm.txt if it lacks the pin)")
    parser.add_argument("--baseline", type=Path, help="also run Conduit from this checkout (before/after)")
    parser.add_argument("--baseline-database-url",
                        help="the baseline's own database when DATABASE_URL is PostgreSQL (default: a SQLite file)")
    parser.add_argument("--json", help="also write every run's figures to this file")
    args = parser.parse_args()
    levels = [int(c) for c in args.connections.split(",")]
    litellm = turn_path.litellm_install(args.litellm_venv)
    common.print_machine()
    load_before = common.load_average()
    print(f"loadavg before: {load_before}", flush=True)

    with common.workdir() as tmp, common.fake("openai", str(args.chunks)) as upstream:
        env = turn_path.turn_env(tmp)
        common.prepare_database(env)
        keys = {"conduit": turn_path.seed(env, model_url=upstream, emails=[EMAIL])[EMAIL]}
        master_key = "sk-bench-" + secrets.token_hex(8)
        keys["LiteLLM"] = master_key
        sides = ["LiteLLM", "conduit"]
        baseline_server: contextlib.AbstractContextManager = contextlib.nullcontext((None, None))
        if args.baseline:
            baseline_python = str(args.baseline / ".venv" / "bin" / "python")
            baseline_env = {**env, "DATABASE_URL": args.baseline_database_url or f"sqlite:///{tmp / 'baseline.sqlite3'}"}
            common.prepare_database(baseline_env, root=args.baseline, python=baseline_python)
            keys["baseline"] = turn_path.seed(baseline_env, model_url=upstream, emails=[EMAIL], root=args.baseline,
                                              python=baseline_python)[EMAIL]  # fmt: skip
            baseline_server = common.conduit(baseline_env, root=args.baseline, python=baseline_python,
                                             log=tmp / "baseline.log")
            sides.append("baseline")
        scripts = {
            side: common.wrk_post_script(tmp / f"{side}.lua", body=turn_path.chat_body(),
                                         headers={"Content-Type": "application/json", "Authorization": f"Bearer {key}"})
            for side, key in keys.items()
        }  # fmt: skip
        results: dict[tuple[int, str], list[dict]] = {}
        # Answers Conduit counted as done (2xx, warm-ups included) and connections left waiting at runs' ends.
        done = {"conduit": 0, "baseline": 0}
        cut = {"conduit": 0, "baseline": 0}
        with common.conduit(env, log=tmp / "conduit.log") as (conduit_base, conduit_supervisor), \
                baseline_server as (baseline_base, baseline_supervisor), \
                turn_path.litellm_proxy(litellm, workdir=tmp, upstream=upstream, master_key=master_key) as \
                (litellm_base, _litellm_process, litellm_pid):  # fmt: skip
            bases = {"LiteLLM": litellm_base, "conduit": conduit_base, "baseline": baseline_base}
            pids = {"LiteLLM": litellm_pid, "conduit": common.worker_pids(conduit_supervisor)[0]}
            if baseline_supervisor is not None:
                pids["baseline"] = common.worker_pids(baseline_supervisor)[0]
            print(f"upstream {upstream}; serving processes: " + ", ".join(f"{s} pid {p}" for s, p in pids.items()),
                  flush=True)  # fmt: skip
            for side in sides:
                figures = common.warm(bases[side] + PATH, scripts[side], duration=args.warmup)
                if side in done:
                    done[side] += figures["statuses"].get(200, 0)
                    cut[side] += 2
            for round_index in range(args.rounds):
                for connections in levels:
                    for side in sides:
                        cpu_before = common.cpu_seconds(pids[side])
                        figures = common.wrk(bases[side] + PATH, connections=connections, duration=args.duration,
                                             script=scripts[side])  # fmt: skip
                        time.sleep(0.3)  # what the server still does for the last answers
                        cpu = common.cpu_seconds(pids[side]) - cpu_before
                        figures["cpu_ms"] = 1000 * cpu / max(figures["requests"], 1)
                        results.setdefault((connections, side), []).append(figures)
                        if side in done:
                            done[side] += figures["statuses"].get(200, 0)
                            cut[side] += connections
                        print(f"  round {round_index + 1} c={connections} {side:8}: {figures['rps']:7.1f} req/s,"
                              f" p50 {figures['p50_ms']:7.2f} ms, p99 {figures['p99_ms']:7.2f} ms,"
                              f" CPU {figures['cpu_ms']:6.2f} ms/request, statuses {_statuses(figures)},"
                              f" socket errors {figures['socket_errors']}, loadavg {common.load_average()}",
                              file=sys.stderr, flush=True)  # fmt: skip
            stored = {"conduit": turn_path.stored(env, EMAIL)}
            if args.baseline:
                stored["baseline"] = turn_path.stored(baseline_env, EMAIL, root=args.baseline, python=baseline_python)
        logs = [line for name in ("conduit.log", "baseline.log", "litellm.log") for line in common.log_summary(tmp / name)]
        swept = {side: common.log_count(tmp / f"{side}.log", turn_path.SWEEP_LOG) for side in ("conduit", "baseline")}
    load_after = common.load_average()

    median = statistics.median
    tables: list[tuple[list[str], list[list]]] = [([], []), ([], [])]  # throughput; CPU, latency and failures
    for connections in levels:
        runs = {side: results[(connections, side)] for side in sides}
        rps = {side: median(r["rps"] for r in runs[side]) for side in sides}
        cells = [("conns", connections)]
        for side in sides:
            cells += [(f"{_name(side)} req/s", f"{rps[side]:.1f}"), ("range", common.value_range(r["rps"] for r in runs[side]))]
        cells += [("Conduit/LiteLLM", f"{rps['conduit'] / rps['LiteLLM']:.2f}"),
                  ("per round", " ".join(f"{c['rps'] / r['rps']:.2f}" for r, c in zip(runs["LiteLLM"], runs["conduit"])))]
        if "baseline" in sides:
            cells += [("Conduit/baseline", f"{rps['conduit'] / rps['baseline']:.2f}"),
                      ("per round", " ".join(f"{c['rps'] / b['rps']:.2f}" for b, c in zip(runs["baseline"], runs["conduit"])))]
        more = [("conns", connections)]
        for figure, label, digits in (("cpu_ms", "CPU ms/req", 1), ("p50_ms", "p50 ms", 1), ("p99_ms", "p99 ms", 0)):
            more += [(f"{_name(side)} {label}", f"{median(r[figure] for r in runs[side]):.{digits}f}") for side in sides]
        more += [(f"{_name(side)} non-2xx/socket err", _failures(runs[side])) for side in sides]
        for (headers, rows), row in zip(tables, (cells, more)):
            headers[:] = [header for header, _ in row]
            rows.append([value for _, value in row])
    print()
    print(f"loadavg before {load_before}, after {load_after}; {args.rounds} rounds of {args.duration:g} s per cell;"
          f" POST {PATH}, non-streamed, fake answer of {args.chunks} deltas (medians over the rounds)")  # fmt: skip
    for headers, rows in tables:
        print(common.table(headers, rows))
        print()
    print("\n".join(logs))
    for side, figures in stored.items():
        label = "Conduit" if side == "conduit" else "the baseline"
        print("\n".join(turn_path.stored_report(label, figures, answered=done[side], cut=cut[side],
                                                swept=swept[side])))
    if args.json:
        Path(args.json).write_text(json.dumps({
            "machine": common.machine(), "loadavg": [load_before, load_after], "stored": stored,
            "runs": [{"connections": k[0], "side": k[1], "rounds": v} for k, v in results.items()],
        }, indent=1))  # fmt: skip


def _statuses(figures: dict) -> str:
    return " ".join(f"{status}={count}" for status, count in sorted(figures.get("statuses", {}).items())) or "-"


def _name(side: str) -> str:
    return {"conduit": "Conduit"}.get(side, side)


def _failures(runs: list[dict]) -> str:
    return f"{sum(r['non_2xx'] for r in runs)}/{sum(r['socket_errors'] for r in runs)}"


if __name__ == "__main__":
    main()
