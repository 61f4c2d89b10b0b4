"""Shared pieces of the benchmarks: machine facts, starting Conduit and the fakes as real
processes on 127.0.0.1, running the load generator in its own process, printing tables.

Everything is bounded: servers get a start deadline, every load run a duration and a request cap,
and every process started here is stopped by the context manager that started it."""

from __future__ import annotations

import contextlib
import datetime
import json
import os
import platform
import secrets
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Iterator

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from config.testing.http import http_json  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
PYTHON = sys.executable
PASSWORD = "bench-Password-1234"


def machine() -> dict[str, str]:
    cpu = platform.processor() or "unknown"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    return {
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "cpus": str(os.cpu_count()),
        "cpu": cpu,
        "python": platform.python_version(),
        "kernel": platform.release(),
        "database": "PostgreSQL" if os.environ.get("DATABASE_URL", "").startswith("postgres") else "SQLite",
    }


def print_machine() -> None:
    facts = machine()
    print("machine: " + ", ".join(f"{k}={v}" for k, v in facts.items()))


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for_http(url: str, *, process: subprocess.Popen | None = None, timeout: float = 40) -> None:
    deadline = time.monotonic() + timeout
    while True:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"{url}: the server exited with {process.returncode}")
        try:
            urllib.request.urlopen(url, timeout=2).read()
            return
        except urllib.error.HTTPError:
            return  # it answers
        except (urllib.error.URLError, OSError):
            if time.monotonic() > deadline:
                raise RuntimeError(f"{url} did not come up in {timeout} s") from None
            time.sleep(0.1)


def stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@contextlib.contextmanager
def fake(kind: str, *args: str) -> Iterator[str]:
    """A fake upstream (`bench/fakes.py <kind>`) in its own process; yields its base URL."""
    process = subprocess.Popen(
        [PYTHON, str(ROOT / "bench" / "fakes.py"), kind, *args],
        cwd=ROOT, stdout=subprocess.PIPE, stdin=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        base_url = process.stdout.readline().strip()
        if not base_url.startswith("http"):
            raise RuntimeError(f"fake {kind} did not start")
        yield base_url
    finally:
        process.stdin.close()
        stop(process)


def database_url(workdir: Path) -> str:
    """DATABASE_URL if given (PostgreSQL), else a fresh SQLite file in `workdir`."""
    return os.environ.get("DATABASE_URL") or f"sqlite:///{workdir / 'bench.sqlite3'}"


def base_env(workdir: Path, **extra: str) -> dict[str, str]:
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("CLAIRE__", "ANTHROPIC_", "AUTH0__", "THROTTLE_"))
    }
    env.update(
        {
            "PYTHONUNBUFFERED": "1",
            "DEBUG": "0",
            "SECRET_KEY": "bench-" + secrets.token_hex(16),
            "DATABASE_URL": database_url(workdir),
            "LOG_LEVEL": "WARNING",
            "STATIC_ROOT": str(workdir / "static"),
            # The benches drive all their streams as one user.
            "ASSISTANT_MAX_CONCURRENT_TURNS_PER_USER": "1000000",
            # ...and open all their connections (1,000 websockets) from one address.
            "HTTP_MAX_CONNECTIONS_PER_CLIENT": "0",
        }
    )
    env.update(extra)
    return env


def manage(env: dict[str, str], *args: str, timeout: float = 300) -> str:
    result = subprocess.run(
        [PYTHON, "manage.py", *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout
    )
    if result.returncode:
        raise RuntimeError(f"manage.py {' '.join(args)} failed:\n{result.stdout}\n{result.stderr}")
    return result.stdout


def prepare_database(env: dict[str, str]) -> None:
    manage(env, "migrate", "--noinput", "-v0")


def create_user(env: dict[str, str], email: str) -> int:
    """A user with PASSWORD (hashed by the configured hasher); returns its id."""
    code = (
        "from accounts.models import User;"
        f"User.objects.filter(email={email!r}).delete();"
        f"u = User.objects.create_user(email={email!r}, password={PASSWORD!r}, name='Bench');"
        "print(u.pk)"
    )
    return int(manage(env, "shell", "-c", code).strip().splitlines()[-1])


@contextlib.contextmanager
def conduit(env: dict[str, str], *, workers: int = 1, cpu_affinity: bool = False) -> Iterator[tuple[str, subprocess.Popen]]:
    """`manage.py run` on a free port; yields (base URL, the supervisor process)."""
    port = free_port()
    affinity = ["--cpu-affinity"] if cpu_affinity else []
    process = subprocess.Popen(
        [PYTHON, "manage.py", "run", "--port", str(port), "--workers", str(workers), *affinity, "--log-level", "warning"],
        cwd=ROOT, env=env, stdout=subprocess.DEVNULL,
    )  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    try:
        wait_for_http(f"{base}/health", process=process)
        yield base, process
    finally:
        stop(process)


def worker_pids(supervisor: subprocess.Popen) -> list[int]:
    """The daphne processes under a `manage.py run` supervisor."""
    children = Path(f"/proc/{supervisor.pid}/task/{supervisor.pid}/children")
    with contextlib.suppress(OSError):
        return [int(pid) for pid in children.read_text().split()]
    return []


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):  # peak resident set size
            return int(line.split()[1])
    return 0


def login(base: str, email: str) -> str:
    status, body = http_json("POST", f"{base}/api/v1/auth/login", {"email": email, "password": PASSWORD})
    if status != 200:
        raise RuntimeError(f"login failed: {status} {body}")
    return body["access_token"]


def load(url: str, *, method: str = "GET", headers: dict[str, str] | None = None, body: str = "",
         connections: int = 1, duration: float = 5.0, warmup: float = 1.0, max_requests: int = 200_000) -> dict:
    """Run bench/loadgen.py in its own process against `url`; returns its figures."""
    command = [
        PYTHON, str(ROOT / "bench" / "loadgen.py"), "--url", url, "--method", method,
        "-c", str(connections), "-d", str(duration), "--warmup", str(warmup),
        "--max-requests", str(max_requests), "--body", body,
    ]  # fmt: skip
    for name, value in (headers or {}).items():
        command += ["-H", f"{name}: {value}"]
    result = subprocess.run(command, capture_output=True, text=True, timeout=duration + warmup + 60)
    if result.returncode:
        raise RuntimeError(f"loadgen failed:\n{result.stderr}")
    return json.loads(result.stdout)


def table(headers: list[str], rows: list[list]) -> str:
    cells = [[str(h) for h in headers]] + [[_fmt(v) for v in row] for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    lines = ["| " + " | ".join(c.ljust(w) for c, w in zip(cells[0], widths)) + " |"]
    lines.append("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    for row in cells[1:]:
        lines.append("| " + " | ".join(c.rjust(w) for c, w in zip(row, widths)) + " |")
    return "\n".join(lines)


def _fmt(value) -> str:
    if isinstance(value, float):
        return f"{value:,.0f}" if abs(value) >= 100 else f"{value:.2f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


@contextlib.contextmanager
def workdir() -> Iterator[Path]:
    with tempfile.TemporaryDirectory(prefix="conduit-bench-") as path:
        yield Path(path)
