"""Benchmark: the CPU instructions a request costs the serving worker, two servers compared.

The wrk benchmarks time servers; on a shared 2-core machine their rounds swing by more than the few per cent
they look for. Instructions swing far less: valgrind's callgrind counts the ones the serving worker executes,
and with one client at a time (the default) the worker takes the same path whatever else runs on the
machine (with concurrent clients, how their requests interleave, and so the count, depends on the load). Setup as bench/metrics_cost.py: `manage.py run`, one worker, tracing off,
an organization agent on the fake OpenAI-compatible upstream, a personal API key, SQLite. Each side's server
runs under callgrind (~50× slower); after a warm-up the worker's counters are zeroed, `--requests`
non-streamed `POST /v1/chat/completions` (and `GET /bots` of the organization server) are sent from
`--concurrency` client threads, and the counters are dumped: instructions per request.

    .venv/bin/python bench/instructions.py --metrics             # METRICS_ENABLED off against on (issue 30)
    .venv/bin/python bench/instructions.py --baseline ../before  # that checkout against this one
        [--baseline-python ../before/.venv/bin/python] [--requests 100] [--concurrency 1] [--batches 3]

Needs valgrind (Debian's package); takes several minutes.
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import requests

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import common, turn_path  # noqa: E402
from config.testing.fake_oidc import FakeOIDCProvider  # noqa: E402
from orgproxy.tests.fake_claire import API_KEY  # noqa: E402

EMAIL = "bench-instructions@example.com"


def valgrind_python(folder: Path, python: str) -> str:
    """An executable that runs Python under callgrind, its children too (the run command's worker)."""
    wrapper = folder / "python-under-callgrind"
    wrapper.write_text(
        "#!/bin/sh\n"
        f"exec valgrind --tool=callgrind --trace-children=yes --quiet --callgrind-out-file={folder}/callgrind.%p "
        f'{python} "$@"\n'
    )
    wrapper.chmod(0o755)
    return str(wrapper)


def callgrind_control(*args: str) -> str:
    return subprocess.run(["callgrind_control", *args], capture_output=True, text=True, timeout=600).stdout


def dumped_instructions(folder: Path, pid: int, before: set[Path]) -> int:
    """The instruction count of the dump `callgrind_control -d` just wrote for `pid`."""
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        new = [p for p in folder.glob(f"callgrind.{pid}.*") if p not in before]
        for path in new:
            text = path.read_text(errors="replace")
            found = re.search(r"^(?:summary|totals): (\d+)", text, re.MULTILINE)
            if found:
                return int(found.group(1))
        time.sleep(0.5)
    raise RuntimeError(f"no callgrind dump of {pid}")


def the_worker(supervisor) -> int:
    """The run command's one worker (its supervisor may still be starting it, ~50× slower under valgrind)."""
    deadline = time.monotonic() + 120
    while not (workers := common.worker_pids(supervisor)):
        if time.monotonic() > deadline:
            raise RuntimeError("the server's worker process was not found")
        time.sleep(0.5)
    [worker] = workers
    return worker


def send(url: str, count: int, concurrency: int, **kwargs) -> None:
    session = requests.Session()
    adapter = requests.adapters.HTTPAdapter(pool_maxsize=concurrency)
    session.mount("http://", adapter)

    def one(_):
        reply = session.request(url=url, timeout=300, **kwargs)
        if reply.status_code >= 400:
            raise RuntimeError(f"{url}: {reply.status_code} {reply.text[:200]}")

    with ThreadPoolExecutor(concurrency) as pool:
        list(pool.map(one, range(count)))


def measure(side: str, env: dict[str, str], folder: Path, rows, args, *, root: Path, python: str) -> dict[str, list[int]]:
    counts: dict[str, list[int]] = {}
    wrapped = valgrind_python(folder, python)
    with common.conduit(env, root=root, python=wrapped, log=folder / "server.log", timeout=600) as (base, process):
        worker = the_worker(process)
        for name, path, kwargs in rows:
            send(base + path, 10, 2, **kwargs)  # warm: imports, caches, the upstream's connection
        for _batch in range(args.batches):
            for name, path, kwargs in rows:
                callgrind_control("-z", str(worker))
                before = set(folder.glob(f"callgrind.{worker}.*"))
                send(base + path, args.requests, args.concurrency, **kwargs)
                callgrind_control("-d", str(worker))
                counts.setdefault(name, []).append(dumped_instructions(folder, worker, before) // args.requests)
                print(f"  {side}: {name}: {counts[name][-1]:,} instructions/request",
                      file=sys.stderr, flush=True)  # fmt: skip
    return counts


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=100, help="requests per batch")
    parser.add_argument("--concurrency", type=int, default=1)
    parser.add_argument("--batches", type=int, default=3)
    parser.add_argument("--metrics", action="store_true", help="this checkout, METRICS_ENABLED off against on")
    parser.add_argument("--baseline", type=Path, help="that checkout against this one (both as configured)")
    parser.add_argument("--baseline-python", help="the baseline's Python (default: its .venv's)")
    args = parser.parse_args()
    if bool(args.metrics) == bool(args.baseline):
        parser.error("give --metrics or --baseline")
    common.print_machine()
    with common.workdir() as tmp, common.fake("claire") as claire, common.fake("openai", "5") as upstream, \
            FakeOIDCProvider() as provider:  # fmt: skip
        token = provider.mint(sub="auth0|bench-instructions", exp=int(time.time()) + 4 * 3600)
        env = turn_path.turn_env(
            tmp, AUTH0__ISSUER=provider.issuer, AUTH0__AUDIENCE=provider.audience, AUTH0__JWKS_URL=provider.jwks_url,
            CLAIRE__BASE_URL=claire, CLAIRE__API_KEY=API_KEY,
        )  # fmt: skip
        env = {k: v for k, v in env.items() if not k.startswith("OTEL_")}
        if args.metrics:
            sides = {"metrics off": (common.ROOT, common.PYTHON, {"METRICS_ENABLED": "0"}),
                     "metrics on": (common.ROOT, common.PYTHON, {"METRICS_ENABLED": "1"})}
        else:
            baseline_python = args.baseline_python or str(args.baseline.resolve() / ".venv" / "bin" / "python")
            sides = {"baseline": (args.baseline.resolve(), baseline_python, {}), "this": (common.ROOT, common.PYTHON, {})}
        results = {}
        for index, (side, (root, python, extra)) in enumerate(sides.items()):
            side_env = {**env, **extra, "DATABASE_URL": f"sqlite:///{tmp / f'side{index}.sqlite3'}"}
            common.prepare_database(side_env, root=root, python=python)
            key = turn_path.seed(side_env, model_url=upstream, emails=[EMAIL], root=root, python=python)[EMAIL]
            rows = [
                ("POST /v1/chat/completions", "/v1/chat/completions", {
                    "method": "POST", "data": turn_path.chat_body(),
                    "headers": {"Content-Type": "application/json", "Authorization": f"Bearer {key}"}}),
                ("GET /bots", "/bots", {"method": "GET", "headers": {"Authorization": f"Bearer {token}"}}),
            ]  # fmt: skip
            folder = tmp / f"callgrind-{index}"
            folder.mkdir()
            results[side] = measure(side, side_env, folder, rows, args, root=root, python=python)
    print()
    print(f"{args.batches} batches of {args.requests} requests from {args.concurrency} threads, per side")
    # The lowest batch is the request's own cost: timers (the stale-turn sweep, caches' refreshes) fire ~50×
    # as often per request under valgrind's slow clock, and land in some batches only.
    (first, a), (second, b) = results.items()
    table = []
    for name in a:
        table.append([name, common.value_range(a[name]), common.value_range(b[name]),
                      f"{min(b[name]) / min(a[name]):.4f}", f"{statistics.median(b[name]) / statistics.median(a[name]):.4f}",
                      f"{min(b[name]) - min(a[name]):+,.0f}"])  # fmt: skip
    print(common.table(["request", f"{first} instr/req", f"{second} instr/req", f"{second}/{first} (lowest)",
                        "(medians)", "difference (lowest)"], table))  # fmt: skip


if __name__ == "__main__":
    os.environ.setdefault("PYTHONHASHSEED", "0")
    main()
