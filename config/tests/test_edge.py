"""The server's edge (config/http/edge.py) against a real `manage.py run`, with raw sockets: the attacks of
issue 33 (items 4 and 5). A body declared 10 GB long, or sent chunked without end, is refused with a 413
before it is buffered; headers trickled a byte at a time, a stalled body and an idle kept-alive
connection are closed on time while /health keeps answering; one address can't hold more than its
share of connections (counted by X-Forwarded-For only behind configured proxies); websockets outlive
every timeout. Clients on other loopback addresses (127.0.0.2, …) stand for other machines."""

from __future__ import annotations

import asyncio
import json
import os
import resource
import socket
import time
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path

import pytest
import websockets
from django.core.management import call_command
from django.db import connection

from config.testing.processes import database_url_for_children, running_server, serving_pids, signed_up

# reset_sequences: the module's server shares the test database on PostgreSQL (see test_openai_api_live).
pytestmark = pytest.mark.django_db(transaction=True, reset_sequences=True)

TIMEOUT = 3  # the server's header, body and keep-alive timeouts, seconds
CAP = 6  # its HTTP_MAX_CONNECTIONS_PER_CLIENT
LIMIT = 2_621_440  # its DATA_UPLOAD_MAX_MEMORY_SIZE (the default)


@dataclass
class Served:
    base: str
    port: int
    pid: int  # the worker's
    tmpdir: Path  # its TMPDIR

    def buffered(self) -> int:
        """Bytes in the files the worker holds open under its TMPDIR (request bodies Twisted buffers
        to anonymous temporary files there: `du` can't see them, /proc can)."""
        total = 0
        for fd in Path(f"/proc/{self.pid}/fd").iterdir():
            try:
                if os.readlink(fd).startswith(str(self.tmpdir)):
                    total += os.stat(fd).st_size
            except OSError:  # closed meanwhile
                continue
        return total


@pytest.fixture(scope="module")
def child_database(tmp_path_factory, django_db_setup, django_db_blocker) -> str:
    with django_db_blocker.unblock():
        if connection.vendor == "postgresql":
            call_command("flush", interactive=False, reset_sequences=True, verbosity=0)
        return database_url_for_children(tmp_path_factory.mktemp("edge"))


def _env(database: str, tmpdir: Path, **more: str) -> dict[str, str]:
    return {
        "DATABASE_URL": database, "TMPDIR": str(tmpdir), "HTTP_HEADER_TIMEOUT": str(TIMEOUT),
        "HTTP_BODY_TIMEOUT": str(TIMEOUT), "HTTP_KEEPALIVE_TIMEOUT": str(TIMEOUT),
        "HTTP_MAX_CONNECTIONS_PER_CLIENT": str(CAP), **more,
    }  # fmt: skip


@pytest.fixture(scope="module")
def served(child_database, tmp_path_factory):
    tmpdir = tmp_path_factory.mktemp("server-tmp")
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    # Started with a soft limit of open files below the hard one, which the server should raise.
    # The metrics' multiprocess files (mmapped, held open) live apart from TMPDIR, where only request
    # bodies Twisted buffers are counted.
    metrics = str(tmp_path_factory.mktemp("metrics"))
    env = _env(child_database, tmpdir, PROMETHEUS_MULTIPROC_DIR=metrics)
    with running_server(env, open_files=max(64, hard // 2)) as base:
        (pid,) = serving_pids(base)
        yield Served(base, int(base.rsplit(":", 1)[1]), pid, tmpdir)


def connect(served: Served, source: str = "127.0.0.1") -> socket.socket:
    sock = socket.socket()
    sock.bind((source, 0))
    sock.connect(("127.0.0.1", served.port))
    return sock


def head(method: str, path: str, *headers: str) -> bytes:
    return "\r\n".join([f"{method} {path} HTTP/1.1", "Host: 127.0.0.1", *headers, "", ""]).encode()


def read_until_closed(sock: socket.socket, timeout: float) -> tuple[bytes, bool]:
    """What the server sends until it closes the connection: (bytes, closed within `timeout`)."""
    sock.settimeout(timeout)
    data = b""
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            chunk = sock.recv(65536)
            if not chunk:
                return data, True
            data += chunk
    except TimeoutError:
        return data, False
    except ConnectionResetError:
        return data, True
    return data, False


def status_and_detail(answer: bytes) -> tuple[int, dict]:
    head_part, _, body = answer.partition(b"\r\n\r\n")
    status = int(head_part.split(b" ", 2)[1]) if head_part else 0
    return status, (json.loads(body).get("detail", {}) if body.startswith(b"{") else {})


def get_health(served: Served, source: str = "127.0.0.1") -> tuple[int, float]:
    started = time.monotonic()
    with closing(connect(served, source)) as sock:
        sock.sendall(head("GET", "/health", "Connection: close"))
        answer, _ = read_until_closed(sock, 10)
    return status_and_detail(answer)[0], time.monotonic() - started


# --- bodies -------------------------------------------------------------------------------------


def test_a_body_declared_10_gb_long_is_refused_before_a_byte_of_it_is_buffered(served):
    sock = connect(served)
    sock.sendall(head("POST", "/api/v1/auth/login", "Content-Type: application/json", "Content-Length: 10000000000"))
    most_buffered, sent = 0, 0
    try:
        while sent < 4 * 2**20:  # a few MB of the body
            sock.sendall(b"x" * 65536)
            sent += 65536
            most_buffered = max(most_buffered, served.buffered())
    except (BrokenPipeError, ConnectionResetError):
        pass  # the server closed the connection: what matters is what it answered
    answer, closed = read_until_closed(sock, 10)
    sock.close()

    assert most_buffered == 0 and served.buffered() == 0
    assert not list(served.tmpdir.iterdir())
    status, detail = status_and_detail(answer)
    assert status == 413, answer[:300]
    assert detail["code"] == "too_large" and str(LIMIT) in detail["message"] and detail["request_id"]
    assert closed


def test_a_chunked_body_is_counted_as_it_arrives_and_cut_at_the_limit(served):
    sock = connect(served)
    sock.sendall(head("POST", "/api/v1/auth/login", "Content-Type: application/json", "Transfer-Encoding: chunked"))
    most_buffered, sent = 0, 0
    try:
        while sent < 40 * 2**20:  # never ends on its own: the server has to cut it
            sock.sendall(b"10000\r\n" + b"x" * 65536 + b"\r\n")
            sent += 65536
            most_buffered = max(most_buffered, served.buffered())
    except (BrokenPipeError, ConnectionResetError):
        pass
    answer, closed = read_until_closed(sock, 10)
    sock.close()

    assert most_buffered <= LIMIT
    assert sent < 40 * 2**20
    status, detail = status_and_detail(answer)
    assert status == 413, answer[:300]
    assert detail["code"] == "too_large" and str(LIMIT) in detail["message"]
    assert closed


def test_uploads_have_their_larger_limit_on_their_path_only(served):
    declared = 5 * 2**20  # over DATA_UPLOAD_MAX_MEMORY_SIZE, under the upload limit (10 MiB + envelope)
    answers = {}
    for path in ("/api/v1/sessions/1/files", "/api/v1/agents"):
        with closing(connect(served)) as sock:
            sock.sendall(head("POST", path, "Content-Type: multipart/form-data; boundary=B",
                              f"Content-Length: {declared}", "Connection: close"))  # fmt: skip
            try:
                for _ in range(declared // 65536):
                    sock.sendall(b"x" * 65536)
            except (BrokenPipeError, ConnectionResetError):
                pass
            answers[path] = status_and_detail(read_until_closed(sock, 10)[0])
    assert answers["/api/v1/sessions/1/files"][0] == 401  # reached the API: it wants a user first
    assert answers["/api/v1/agents"][0] == 413 and answers["/api/v1/agents"][1]["code"] == "too_large"


# --- timeouts -----------------------------------------------------------------------------------


def test_headers_trickled_a_line_at_a_time_are_closed_on_time_while_health_answers(served):
    # Slowloris from five addresses, each holding as many connections as it may.
    sources = [f"127.0.0.{n}" for n in range(2, 7)]
    slow = [connect(served, source) for source in sources for _ in range(CAP)]
    started = time.monotonic()
    for sock in slow:
        sock.sendall(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n")
        sock.setblocking(False)
    closed_after: dict[int, float] = {}
    health: list[tuple[int, float]] = []
    while len(closed_after) < len(slow) and time.monotonic() - started < TIMEOUT + 8:
        for index, sock in enumerate(slow):
            if index in closed_after:
                continue
            try:
                sock.send(b"X-Slow: a\r\n")  # one more header line: never the end of them
                while sock.recv(65536):  # the 408, if sent
                    pass
                closed_after[index] = time.monotonic() - started  # recv() gave the end of the stream
            except BlockingIOError:
                pass  # open, nothing to read
            except (BrokenPipeError, ConnectionResetError):
                closed_after[index] = time.monotonic() - started
        health.append(get_health(served))
        time.sleep(0.2)
    for sock in slow:
        sock.close()

    assert len(closed_after) == len(slow), f"{len(slow) - len(closed_after)} slow connections still open"
    assert max(closed_after.values()) < TIMEOUT + 3
    assert all(status == 200 for status, _ in health)
    assert max(seconds for _, seconds in health) < 2.0


def test_a_body_that_stalls_is_closed_with_a_408(served):
    with closing(connect(served)) as sock:
        sock.sendall(head("POST", "/api/v1/auth/login", "Content-Type: application/json", "Content-Length: 100"))
        sock.sendall(b'{"email": ')  # and nothing more
        started = time.monotonic()
        answer, closed = read_until_closed(sock, TIMEOUT + 5)
    assert closed and time.monotonic() - started < TIMEOUT + 3
    status, detail = status_and_detail(answer)
    assert status == 408 and detail["code"] == "timeout"


def test_an_idle_kept_alive_connection_is_closed_after_the_keepalive_timeout(served):
    with closing(connect(served)) as sock:
        sock.sendall(head("GET", "/health"))
        sock.settimeout(10)
        assert sock.recv(65536).startswith(b"HTTP/1.1 200")
        started = time.monotonic()
        answer, closed = read_until_closed(sock, TIMEOUT + 5)
    assert closed and answer == b""  # closed quietly
    assert TIMEOUT - 0.5 < time.monotonic() - started < TIMEOUT + 3


def test_an_open_websocket_outlives_every_timeout(served):
    _, token = signed_up(served.base)

    async def idle_then_ping() -> dict:
        async with websockets.connect(
            served.base.replace("http", "ws") + "/ws/assistant/", subprotocols=["jwt", token], origin=served.base,
            open_timeout=10, ping_interval=None,  # the client's own pings would be traffic
        ) as socket_:  # fmt: skip
            await asyncio.sleep(3 * TIMEOUT)
            await socket_.send(json.dumps({"type": "ping"}))
            while True:
                frame = json.loads(await asyncio.wait_for(socket_.recv(), 10))
                if frame["type"] == "pong":
                    return frame

    assert asyncio.run(idle_then_ping()) == {"type": "pong"}


# --- connections per client ---------------------------------------------------------------------


def test_the_connection_past_the_per_client_cap_is_refused_and_other_clients_are_served(served):
    _, token = signed_up(served.base)
    source = "127.0.0.7"

    async def scenario():
        websocket_sock = connect(served, source)  # a websocket counts as one of the client's connections
        ws = await websockets.connect(
            served.base.replace("http", "ws") + "/ws/assistant/", subprotocols=["jwt", token], origin=served.base,
            sock=websocket_sock, open_timeout=10,
        )  # fmt: skip
        # Kept alive after a request: they count until they close. Without configured proxies,
        # X-Forwarded-For is not believed: each says it comes from another client, in vain.
        held = [connect(served, source) for _ in range(CAP - 1)]
        opened = time.monotonic()
        for n, sock in enumerate(held):
            sock.sendall(head("GET", "/health", f"X-Forwarded-For: 10.0.0.{n}"))
            sock.settimeout(10)
            assert sock.recv(65536).startswith(b"HTTP/1.1 200")
        extra = connect(served, source)
        refused = status_and_detail(read_until_closed(extra, 5)[0])
        other_client = get_health(served, "127.0.0.8")[0]
        await ws.close()
        await asyncio.sleep(0.2)
        after_the_websocket_closed = get_health(served, source)[0]
        still_held = time.monotonic() - opened < TIMEOUT  # else the kept-alive ones timed out meanwhile
        for sock in [extra, *held]:
            sock.close()
        return refused, other_client, after_the_websocket_closed, still_held

    (status, detail), other_client, after, still_held = asyncio.run(scenario())
    assert status == 503 and detail["code"] == "too_many_connections" and str(CAP) in detail["message"]
    assert other_client == 200
    assert after == 200 and still_held  # the websocket's place was given back when it closed


@pytest.fixture(scope="module")
def behind_a_proxy(child_database, tmp_path_factory):
    env = _env(child_database, tmp_path_factory.mktemp("proxied-tmp"), NUM_PROXIES="1")
    with running_server(env) as base:
        yield Served(base, int(base.rsplit(":", 1)[1]), serving_pids(base)[0], Path(env["TMPDIR"]))


def test_behind_a_proxy_clients_are_told_apart_by_the_address_the_proxy_wrote(behind_a_proxy):
    served = behind_a_proxy

    def request_in_progress(forwarded_for: str) -> socket.socket:
        # All from the proxy's address; each holds its client's place while its body is awaited.
        sock = connect(served)
        sock.sendall(head("POST", "/api/v1/auth/login", f"X-Forwarded-For: {forwarded_for}",
                          "Content-Type: application/json", "Content-Length: 100"))  # fmt: skip
        return sock

    # The proxy appends the address it saw; what is left of it is whatever the client sent.
    held = [request_in_progress(f"10.9.9.{n}, 203.0.113.5") for n in range(CAP)]
    time.sleep(0.3)
    extra = request_in_progress("10.1.1.1, 203.0.113.5")
    refused = status_and_detail(read_until_closed(extra, 5)[0])
    other = connect(served)
    other.sendall(head("GET", "/health", "X-Forwarded-For: 198.51.100.7", "Connection: close"))
    other_status = status_and_detail(read_until_closed(other, 5)[0])[0]
    for sock in [extra, other, *held]:
        sock.close()

    assert refused[0] == 503 and refused[1]["code"] == "too_many_connections"
    assert other_status == 200


def test_each_server_process_raises_its_open_files_limit_to_the_hard_limit(served):
    limits = Path(f"/proc/{served.pid}/limits").read_text()
    (line,) = [line for line in limits.splitlines() if line.startswith("Max open files")]
    soft, hard = line.split()[3:5]
    assert soft == hard
