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
import re
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


def machine(database: str | None = None) -> dict[str, str]:
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
        "database": database or ("PostgreSQL" if os.environ.get("DATABASE_URL", "").startswith("postgres") else "SQLite"),
    }


def print_machine(database: str | None = None) -> None:
    facts = machine(database)
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


def manage(env: dict[str, str], *args: str, timeout: float = 300, root: Path = ROOT, python: str = PYTHON) -> str:
    """`manage.py ARGS` of this checkout (or of `root` with its `python`, e.g. a baseline's)."""
    result = subprocess.run(
        [python, "manage.py", *args], cwd=root, env=env, capture_output=True, text=True, timeout=timeout
    )
    if result.returncode:
        raise RuntimeError(f"manage.py {' '.join(args)} failed:\n{result.stdout}\n{result.stderr}")
    return result.stdout


def prepare_database(env: dict[str, str], *, root: Path = ROOT, python: str = PYTHON) -> None:
    manage(env, "migrate", "--noinput", "-v0", root=root, python=python)


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
def conduit(env: dict[str, str], *, workers: int = 1, cpu_affinity: bool = False, root: Path = ROOT,
            python: str = PYTHON, log: Path | None = None, timeout: float = 40) -> Iterator[tuple[str, subprocess.Popen]]:
    """`manage.py run` on a free port (of this checkout, or of `root` with its `python`); yields
    (base URL, the supervisor process). Its stderr (the log) goes to `log` if given."""
    port = free_port()
    affinity = ["--cpu-affinity"] if cpu_affinity else []
    with open(log, "ab") if log else contextlib.nullcontext() as stderr:
        process = subprocess.Popen(
            [python, "manage.py", "run", "--port", str(port), "--workers", str(workers), *affinity, "--log-level", "warning"],
            cwd=root, env=env, stdout=subprocess.DEVNULL, stderr=stderr,
        )  # fmt: skip
        base = f"http://127.0.0.1:{port}"
        try:
            wait_for_http(f"{base}/health", process=process, timeout=timeout)
            yield base, process
        finally:
            stop(process)


def log_summary(path: Path, top: int = 5) -> list[str]:
    """A server log in a few lines: its lines by level, the most frequent warnings and errors (ids and
    numbers folded), and the exceptions its tracebacks ended with."""
    if not path.exists():
        return []
    levels: dict[str, int] = {}
    messages: dict[str, int] = {}
    exceptions: dict[str, int] = {}
    for line in path.read_text(errors="replace").splitlines():
        level = re.search(r" (CRITICAL|ERROR|WARNING) (.*)", line)
        if level and level.start() < 40:
            levels[level.group(1)] = levels.get(level.group(1), 0) + 1
            text = re.sub(r"\b\d+\b", "N", re.sub(r"\[[0-9a-f-]+\] ", "", level.group(0).strip()))[:160]
            messages[text] = messages.get(text, 0) + 1
        elif re.match(r"^[A-Za-z_][\w.]*(Error|Exception|Exceeded|Refused|Timeout)\b[^ ]*(: |$)", line):
            exceptions[line[:160]] = exceptions.get(line[:160], 0) + 1
    if not levels and not exceptions:
        return [f"server log {path.name}: empty"]
    lines = [f"server log {path.name}: " + (", ".join(f"{n:,} {lvl}" for lvl, n in sorted(levels.items())) or "no levelled lines")]
    for counts in (messages, exceptions):
        for text, count in sorted(counts.items(), key=lambda item: -item[1])[:top]:
            lines.append(f"  {count:,}× {text}")
    return lines


def log_count(path: Path, text: str) -> int:
    """Lines of a log containing `text`."""
    if not path.exists():
        return 0
    return sum(text in line for line in path.read_text(errors="replace").splitlines())


def worker_pids(supervisor: subprocess.Popen) -> list[int]:
    """The daphne processes under a `manage.py run` supervisor."""
    children = Path(f"/proc/{supervisor.pid}/task/{supervisor.pid}/children")
    with contextlib.suppress(OSError):
        return [int(pid) for pid in children.read_text().split()]
    return []


def descendant_pids(pid: int) -> list[int]:
    """`pid`'s children, grandchildren… (threads' children included), from /proc."""
    found, todo = [], [pid]
    while todo:
        parent = todo.pop()
        with contextlib.suppress(OSError):
            for task in Path(f"/proc/{parent}/task").iterdir():
                with contextlib.suppress(OSError):
                    for child in (task / "children").read_text().split():
                        if int(child) not in found:
                            found.append(int(child))
                            todo.append(int(child))
    return found


def listening_pids(port: int, among: list[int]) -> list[int]:
    """Which of the processes `among` hold the socket listening on 127.0.0.1:`port`."""
    inodes = set()
    for table_name in ("/proc/net/tcp", "/proc/net/tcp6"):
        with contextlib.suppress(OSError):
            for line in Path(table_name).read_text().splitlines()[1:]:
                fields = line.split()
                if fields[3] == "0A" and int(fields[1].rsplit(":", 1)[1], 16) == port:  # 0A: LISTEN
                    inodes.add(f"socket:[{fields[9]}]")
    holders = []
    for pid in among:
        with contextlib.suppress(OSError):
            for fd in Path(f"/proc/{pid}/fd").iterdir():
                with contextlib.suppress(OSError):
                    if os.readlink(fd) in inodes:
                        holders.append(pid)
                        break
    return holders


def serving_pid(pid: int, port: int) -> int:
    """The process that serves `port` in the tree under `pid`: the deepest one holding its
    listening socket (a uvicorn worker rather than its supervisor), else `pid` itself."""
    holders = listening_pids(port, [pid, *descendant_pids(pid)])
    return holders[-1] if holders else pid


def cpu_seconds(pid: int) -> float:
    """User + system CPU a process has used (all its threads), from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def load_average() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


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


@contextlib.contextmanager
def server(command: list[str], env: dict[str, str], health: str, cwd: Path = ROOT,
           timeout: float = 40) -> Iterator[subprocess.Popen]:
    """Any server process (output discarded), up once `health` answers; stopped on exit."""
    process = subprocess.Popen(command, cwd=cwd, env=env, stdout=subprocess.DEVNULL)
    try:
        wait_for_http(health, process=process, timeout=timeout)
        yield process
    finally:
        stop(process)


# --- wrk (Debian's, C) -------------------------------------------------------------------------

# Counts the answers by status in each wrk thread and prints them at the end: `statuses: 200=… 500=…`.
WRK_STATUS_LUA = """
local threads = {}
function setup(thread) table.insert(threads, thread) end
function init(args) statuses = {} end
function response(status, headers, body) statuses[status] = (statuses[status] or 0) + 1 end
function done(summary, latency, requests)
  local counts = {}
  for _, thread in ipairs(threads) do
    for status, n in pairs(thread:get("statuses")) do counts[status] = (counts[status] or 0) + n end
  end
  local parts = {}
  for status, n in pairs(counts) do table.insert(parts, status .. "=" .. n) end
  io.write("statuses: " .. table.concat(parts, " ") .. "\\n")
end
"""


def wrk_post_script(path: Path, *, body: str, headers: dict[str, str], count_statuses: bool = True) -> Path:
    """A wrk Lua script sending POST `body` with `headers` (and counting answers by status)."""
    lines = ['wrk.method = "POST"', f"wrk.body = [==[{body}]==]"]
    lines += [f'wrk.headers["{name}"] = [==[{value}]==]' for name, value in headers.items()]
    path.write_text("\n".join(lines) + "\n" + (WRK_STATUS_LUA if count_statuses else ""))
    return path


def wrk(url: str, *, connections: int, duration: float, script: Path | None, timeout: float = 10) -> dict:
    """One wrk run (`-t1`): req/s, requests done, p50/p99 ms, `non_2xx` (non-2xx/3xx answers),
    `socket_errors`, `errors` (both), and `statuses` ({status: count}) when the script counts them."""
    command = ["wrk", "-t1", f"-c{connections}", f"-d{duration:g}s", "--latency", "--timeout", f"{timeout:g}s"]
    if script is not None:
        command += ["-s", str(script)]
    result = subprocess.run([*command, url], capture_output=True, text=True, timeout=duration + timeout + 60)
    if result.returncode or result.stderr.strip():  # a Lua error leaves wrk sending GETs: fail instead
        raise RuntimeError(f"wrk failed: {result.stderr}")
    out = result.stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    total = int(re.search(r"(\d+) requests in", out).group(1))
    non_2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    socket_errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    non_2xx = int(non_2xx.group(1)) if non_2xx else 0
    socket_errors = sum(map(int, socket_errors.groups())) if socket_errors else 0
    statuses = re.search(r"^statuses: (.*)$", out, re.MULTILINE)
    p50 = re.search(r"50%\s+([\d.]+)(us|ms|s)\b", out)
    p99 = re.search(r"99%\s+([\d.]+)(us|ms|s)\b", out)
    figures = {"rps": rps, "requests": total, "errors": non_2xx + socket_errors, "non_2xx": non_2xx,
               "socket_errors": socket_errors, "p50_ms": _wrk_ms(p50), "p99_ms": _wrk_ms(p99)}  # fmt: skip
    if statuses:
        figures["statuses"] = {int(k): int(v) for k, v in (part.split("=") for part in statuses.group(1).split())}
    return figures


def _wrk_ms(match) -> float:
    if not match:
        return float("nan")
    value, unit = float(match.group(1)), match.group(2)
    return value * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]


def warm(url: str, script: Path | None, *, duration: float = 1, connections: int = 2) -> dict:
    figures = wrk(url, connections=connections, duration=duration, script=script)
    if figures["errors"] or not figures["requests"]:
        raise RuntimeError(f"{url}: warm-up failed ({figures})")
    return figures


def value_range(values, digits: int = 0) -> str:
    """`low–high` of `values`."""
    values = list(values)
    low, high = min(values), max(values)
    if digits:
        return f"{low:.{digits}f}–{high:.{digits}f}"
    return f"{low:,.0f}–{high:,.0f}"


def percentile(values, fraction: float) -> float:
    values = sorted(values)
    if not values:
        return float("nan")
    return values[min(len(values) - 1, round(fraction * (len(values) - 1)))]


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
