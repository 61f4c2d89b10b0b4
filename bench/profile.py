"""Profile one Conduit endpoint under load: py-spy samples the daphne worker while the load
generator runs, and prints the hottest functions (own time and total time).

    .venv/bin/pip install -r bench/requirements.txt
    .venv/bin/python bench/profile.py /bots [--connections 16] [--seconds 8]

py-spy needs ptrace permission on the worker (root, or kernel.yama.ptrace_scope=0)."""

from __future__ import annotations

import argparse
import collections
import shutil
import subprocess
import sys
import threading
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import common  # noqa: E402
from bench.orgproxy import API_KEY, BOT, EMAIL  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("path", help="e.g. /bots, /session, /api/v1/auth/me")
    parser.add_argument("--method", default="GET")
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--seconds", type=float, default=8)
    parser.add_argument("--top", type=int, default=40)
    args = parser.parse_args()
    with common.workdir() as tmp, common.fake("claire") as claire:
        env = common.base_env(tmp, CLAIRE__BASE_URL=claire, CLAIRE__API_KEY=API_KEY)
        common.prepare_database(env)
        common.create_user(env, EMAIL)
        with common.conduit(env) as (base, process):
            token = common.login(base, EMAIL)
            (pid,) = common.worker_pids(process)
            url = f"{base}{args.path}".replace("{bot}", BOT)
            raw = tmp / "profile.txt"
            load = threading.Thread(target=common.load, kwargs=dict(
                url=url, method=args.method, headers={"Authorization": f"Bearer {token}"},
                connections=args.connections, duration=args.seconds + 1, warmup=0.5))  # fmt: skip
            load.start()
            py_spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
            subprocess.run([py_spy, "record", "--pid", str(pid), "--duration", str(int(args.seconds)),
                            "--format", "raw", "--output", str(raw), "--nonblocking"],
                           check=True, capture_output=True, timeout=args.seconds + 60)  # fmt: skip
            load.join()
            report(raw.read_text(), args.top)


def report(collapsed: str, top: int) -> None:
    own, total, samples = collections.Counter(), collections.Counter(), 0
    for line in collapsed.splitlines():
        stack, _, count = line.rpartition(" ")
        count = int(count)
        frames = stack.split(";")
        # Idle threads wait in these: leave them out of the picture.
        if any(f.startswith(("wait (threading", "_worker (concurrent", "select (selectors", "poll (")) for f in frames[-2:]):
            continue
        samples += count
        own[frames[-1]] += count
        for frame in set(frames):
            total[frame] += count
    print(f"{samples} busy samples")
    print("own time:")
    for frame, count in own.most_common(top):
        print(f"  {100 * count / samples:5.1f}%  {frame}")
    print("total time:")
    for frame, count in total.most_common(top):
        print(f"  {100 * count / samples:5.1f}%  {frame}")


if __name__ == "__main__":
    main()
