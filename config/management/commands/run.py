"""`manage.py run`: the production server.

One listening socket, bound here and shared by N daphne processes (the kernel spreads
connections between them). Each process serves websockets through Channels, streaming
responses through Django's ASGI handler and all other HTTP through Django's WSGI handler
(see config/asgi.py). Workers that die are restarted; SIGINT/SIGTERM stop them all.
With --cpu-affinity, worker i runs on the i-th CPU this command may use (modulo their number).
"""

from __future__ import annotations

import argparse
import atexit
import errno
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from django.utils import autoreload

LOG_LEVELS = ("critical", "error", "warning", "info", "debug")
# daphne's own verbosity: 0 quiet, 1 access log, 2 debug
DAPHNE_VERBOSITY = {"critical": 0, "error": 0, "warning": 0, "info": 1, "debug": 2}
RESTART_BACKOFF_SECONDS = 1.0


class Command(BaseCommand):
    help = "Start the production server (daphne; HTTP through Django's WSGI handler, websockets and streams through ASGI)."

    def add_arguments(self, parser):
        parser.add_argument("--host", default=settings.SERVER_HOST, help="Address to bind (env HOST).")
        parser.add_argument("--port", type=int, default=settings.SERVER_PORT, help="Port to bind (env PORT).")
        parser.add_argument(
            "--workers", type=int, default=settings.SERVER_WORKERS, help="Server processes (env WEB_CONCURRENCY)."
        )
        parser.add_argument("--reload", action="store_true", help="Restart when code changes (development).")
        parser.add_argument(
            "--cpu-affinity",
            action=argparse.BooleanOptionalAction,
            default=settings.SERVER_CPU_AFFINITY,
            help="Pin each worker to one CPU (env CPU_AFFINITY; Linux). Faster when the CPUs are this server's alone.",
        )
        parser.add_argument("--log-level", choices=LOG_LEVELS, default=settings.LOG_LEVEL.lower())

    def handle(self, *args, host, port, workers, reload, log_level, cpu_affinity, **options):
        if workers < 1:
            raise CommandError("--workers must be at least 1.")
        cpus = _usable_cpus() if cpu_affinity else None
        serve_options = dict(host=host, port=port, workers=workers, log_level=log_level, cpus=cpus)
        if reload:
            autoreload.run_with_reloader(self.serve, **serve_options)
        else:
            self.serve(**serve_options)

    def serve(self, *, host: str, port: int, workers: int, log_level: str, cpus: list[int] | None) -> None:
        try:
            listener = socket.create_server((host, port), family=_family(host), backlog=2048)
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                raise CommandError(
                    f"Cannot listen on {host}:{port}: the port is busy. Stop what uses it or choose another "
                    "port (--port N, or env PORT)."
                ) from exc
            raise CommandError(f"Cannot listen on {host}:{port}: {exc.strerror or exc}.") from exc
        listener.set_inheritable(True)
        # Accepted connections inherit TCP_NODELAY from the listener (Linux). Without it, a
        # streamed frame that follows another small one waits in Nagle's algorithm for the
        # client's delayed ACK: ~40 ms added to the first token of every answer (bench/RESULTS.md).
        listener.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        frame_limit = str(settings.ASSISTANT_MAX_FRAME_BYTES)
        command = [
            sys.executable, "-m", "config.daphne_server",  # daphne with our edge (config/daphne_server.py)
            "--fd", str(listener.fileno()),
            "-v", str(DAPHNE_VERBOSITY[log_level]),
            "--websocket-max-message-size", frame_limit,
            "--websocket-max-frame-size", frame_limit,
            "config.asgi:application",
        ]  # fmt: skip
        if settings.REST_FRAMEWORK["NUM_PROXIES"]:
            command[3:3] = ["--proxy-headers"]
        env_note = f"{workers} worker{'s' if workers > 1 else ''}"
        if cpus:
            env_note += f", pinned to CPU {', '.join(str(cpus[i % len(cpus)]) for i in range(workers))}"
        self.stdout.write(f"Conduit {settings.VERSION} listening on http://{host}:{port} ({env_note})")
        self.stdout.write(startup_banner(host, port))
        self.stdout.flush()
        with metrics_directory() as env:
            Supervisor(command, workers, listener.fileno(), self.stderr, cpus=cpus, env=env).run()


class metrics_directory:
    """The workers' shared metrics directory (prometheus-client's multiprocess mode: a scrape of any worker
    sums them all), empty at each start: PROMETHEUS_MULTIPROC_DIR if the operator set one (emptied), else a
    new temporary one (removed at the end). Yields the workers' environment; None with metrics off."""

    def __enter__(self) -> dict[str, str] | None:
        self.made = None
        if not settings.METRICS_ENABLED:
            return None
        if settings.PROMETHEUS_MULTIPROC_DIR:
            directory = Path(settings.PROMETHEUS_MULTIPROC_DIR)
            directory.mkdir(parents=True, exist_ok=True)
            for stale in directory.glob("*.db"):  # an earlier run's values: counters start from zero
                stale.unlink()
        else:
            directory = self.made = Path(tempfile.mkdtemp(prefix="conduit-metrics-"))
        return {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(directory)}

    def __exit__(self, *exc_info) -> None:
        if self.made is not None:
            shutil.rmtree(self.made, ignore_errors=True)


def startup_banner(host: str, port: int) -> str:
    """Where to go next: the pages' URLs, the model the chat will use, how to make the first user."""
    shown = "127.0.0.1" if host in {"0.0.0.0", "::", ""} else (f"[{host}]" if ":" in host else host)
    site = f"http://{shown}:{port}"
    lines = [f"  Chat:      {site}/chat/", f"  Admin:     {site}/admin/", f"  API docs:  {site}/api/docs/"]
    if settings.DEMO_MODEL_URL:
        lines.append(
            f"  Model:     the demo model at {settings.DEMO_MODEL_URL} (no key needed; it quotes you; ask it to "
            '"list files" in a chat with the Code reviewer agent to see a tool call). The CLI uses it too: '
            "python3 dev.py manage run_orchestrator -m 'list files'"
        )
    elif not (settings.ANTHROPIC_API_KEY or settings.OPENAI_API_KEY):
        lines.append(
            "  Model:     no model key configured (ANTHROPIC_API_KEY or OPENAI_API_KEY; an LLM config in the "
            "admin may carry its own). To try Conduit without one: python3 dev.py run --demo"
        )
    if not _any_user():
        lines.append(
            "  Users:     none yet. Create an admin: python3 dev.py manage createsuperuser (manage.py createsuperuser "
            "in a container); without prompts, set DJANGO_SUPERUSER_EMAIL, DJANGO_SUPERUSER_NAME and "
            "DJANGO_SUPERUSER_PASSWORD and add --noinput"
        )
    return "\n".join(lines)


def _any_user() -> bool:
    from django.contrib.auth import get_user_model
    from django.db import DatabaseError

    try:
        return get_user_model().objects.exists()
    except DatabaseError:  # not migrated yet: the server says so on its first request
        return True


def _usable_cpus() -> list[int]:
    if not hasattr(os, "sched_setaffinity"):
        raise CommandError("--cpu-affinity needs Linux (sched_setaffinity).")
    return sorted(os.sched_getaffinity(0))


def _family(host: str) -> socket.AddressFamily:
    return socket.AF_INET6 if ":" in host else socket.AF_INET


class Supervisor:
    """Keeps `count` copies of `command` running until told to stop."""

    def __init__(
        self, command: list[str], count: int, inherited_fd: int, stderr, cpus: list[int] | None = None,
        env: dict[str, str] | None = None,
    ):  # fmt: skip
        self.command = command
        self.env = env
        self.cpus = cpus
        self.count = count
        self.inherited_fd = inherited_fd
        self.stderr = stderr
        self.children: list[subprocess.Popen] = []
        self.stopping = False

    def run(self) -> None:
        atexit.register(self.stop)  # the autoreloader exits through sys.exit: take the workers along
        if threading.current_thread() is threading.main_thread():  # not so under --reload
            signal.signal(signal.SIGTERM, self._on_signal)
            signal.signal(signal.SIGINT, self._on_signal)
        self.children = [self._spawn(index) for index in range(self.count)]
        while not self.stopping:
            time.sleep(0.5)
            for index, child in enumerate(self.children):
                if child.poll() is not None and not self.stopping:
                    self.stderr.write(f"Worker {child.pid} exited with {child.returncode}; restarting.")
                    self._forget_metrics_of(child.pid)
                    time.sleep(RESTART_BACKOFF_SECONDS)
                    self.children[index] = self._spawn(index)
        self.stop()

    def _spawn(self, index: int) -> subprocess.Popen:
        child = subprocess.Popen(self.command, pass_fds=(self.inherited_fd,), env=self.env)
        if self.cpus:
            # Before the worker has started any thread (its interpreter is still starting): every
            # thread it makes inherits the affinity.
            os.sched_setaffinity(child.pid, {self.cpus[index % len(self.cpus)]})
        return child

    def _forget_metrics_of(self, pid: int) -> None:
        """A dead worker's gauges (turns running, websockets open) no longer count; its counters do."""
        if self.env is not None and "PROMETHEUS_MULTIPROC_DIR" in self.env:
            from prometheus_client import multiprocess

            multiprocess.mark_process_dead(pid, self.env["PROMETHEUS_MULTIPROC_DIR"])

    def _on_signal(self, signum, frame) -> None:
        self.stopping = True

    def stop(self) -> None:
        self.stopping = True
        for child in self.children:
            if child.poll() is None:
                child.terminate()
        deadline = time.monotonic() + 10
        for child in self.children:
            try:
                child.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                child.kill()
                child.wait()
