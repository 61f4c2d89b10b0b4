"""What the turn-path benchmarks share (bench/turns_wrk.py, bench/first_content.py,
bench/turns_pg_load.py): Conduit seeded with an organization agent on the fake OpenAI upstream,
the check that every turn was stored, LiteLLM's proxy in its own virtualenv, and a small HTTP/1.1
client on one kept-alive socket that times the first content of a streamed answer."""

from __future__ import annotations

import base64
import contextlib
import json
import os
import socket
import struct
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable, Iterator
from urllib.parse import urlsplit

from bench import common

SLUG = "bench-agent"  # Conduit's organization agent = the `model` of /v1/chat/completions = LiteLLM's model name
UPSTREAM_MODEL = "gpt-test-1"
PROMPT = "Hello"
LITELLM_VENV = common.ROOT / "bench" / ".litellm-venv"
LITELLM_REQUIREMENTS = common.ROOT / "bench" / "requirements-litellm.txt"


def chat_body(*, stream: bool = False, model: str = SLUG) -> str:
    body = {"model": model, "messages": [{"role": "user", "content": PROMPT}]}
    if stream:
        body["stream"] = True
    return json.dumps(body)


def turn_env(workdir: Path, **extra: str) -> dict[str, str]:
    """common.base_env with budgets off (the budget check still runs before every turn)."""
    return common.base_env(workdir, BUDGET_USER_MONTHLY_TOKENS="0", BUDGET_USER_MONTHLY_COST="0", **extra)


# --- seeding (manage.py shell -c, in the checkout that serves) ---------------------------------------

_SEED = """
from accounts import services as accounts
from accounts.models import User
from agents import services as agents
from agents.models import AIAgent
slug, model_url = {slug!r}, {model_url!r}
if not AIAgent.objects.filter(owner__isnull=True, slug=slug).exists():
    config = agents.llm_config_create(owner=None, name=slug, provider="openai", model={model!r}, base_url=model_url,
                                      api_key="sk-fake", max_tokens=4096)
    agents.agent_create(owner=None, name="Bench agent", slug=slug, system_prompt_text="Be brief.", llm_config=config)
for email in {emails!r}:
    User.objects.filter(email=email).delete()
    user = User.objects.create_user(email=email, password={password!r}, name="Bench")
    print("KEY", email, accounts.api_key_create(user=user, name="bench").key)
"""


def seed(env: dict[str, str], *, model_url: str, emails: list[str], slug: str = SLUG,
         root: Path = common.ROOT, python: str = common.PYTHON) -> dict[str, str]:
    """What staff set up: an organization-wide LLM config (provider `openai`, base URL = the fake
    upstream; an organization's own endpoint, so no egress allow-list is involved) and an
    organization agent `slug` on it, no tools. And users (password common.PASSWORD) with a personal
    API key each. Returns {email: API key (`cdk_…`)}."""
    code = _SEED.format(slug=slug, model_url=model_url, model=UPSTREAM_MODEL, emails=emails, password=common.PASSWORD)
    out = common.manage(env, "shell", "-c", code, root=root, python=python)
    keys = {}
    for line in out.splitlines():
        if line.startswith("KEY "):
            _, email, key = line.split()
            keys[email] = key
    return keys


_STORED = """
import json
from django.db.models import Count
from agents.models import Message, UserAgentSession
sessions = UserAgentSession.objects.filter(owner__email={email!r})
messages = Message.objects.filter(session__owner__email={email!r})
answers = messages.filter(role="assistant")
statuses = dict(answers.order_by().values_list("status").annotate(n=Count("id")))
empty = sum(1 for content in answers.filter(status="complete").values_list("content", flat=True).iterator()
            if not any(block.get("text") for block in content or []))
not_two = sessions.order_by().annotate(n=Count("messages")).exclude(n=2).count()
print("STORED", json.dumps({{"sessions": sessions.count(), "messages": messages.count(), "assistant": statuses,
                            "complete_without_text": empty, "sessions_without_two_messages": not_two}}))
"""


def stored(env: dict[str, str], email: str, *, root: Path = common.ROOT, python: str = common.PYTHON,
           settle: float = 15) -> dict:
    """What the database holds for `email`'s turns: sessions, messages, assistant messages by status,
    complete answers without text, sessions without exactly two messages. Asked until no answer is
    `streaming` any more (turns cut by a client's disconnect settle as `stopped`), for `settle` s."""
    deadline = time.monotonic() + settle
    while True:
        try:
            out = common.manage(env, "shell", "-c", _STORED.format(email=email), root=root, python=python)
        except RuntimeError:  # e.g. PostgreSQL's "too many clients" while the server holds them all
            if time.monotonic() > deadline:
                raise
            time.sleep(1)
            continue
        figures = json.loads(next(line for line in out.splitlines() if line.startswith("STORED "))[7:])
        if not figures["assistant"].get("streaming") or time.monotonic() > deadline:
            return figures
        time.sleep(1)


SWEEP_LOG = "was left streaming by a dead process"  # assistant/sweeps.py's warning for each answer it closes


def stored_report(label: str, figures: dict, *, answered: int, cut: int, swept: int = 0) -> list[str]:
    """Lines saying whether `figures` (stored()) hold every answer a load generator got (`answered`,
    its 200s) complete with text, and what became of the turns of the `cut` connections it closed
    while they waited (at most one turn each: complete but unread, `stopped`, still `streaming`, or
    `error` when the stale-turn sweep closed it: `swept`, counted in the server's log)."""
    statuses = figures["assistant"]
    complete, stopped, streaming, error = (statuses.get(s, 0) for s in ("complete", "stopped", "streaming", "error"))
    others = {s: n for s, n in statuses.items() if s not in ("complete", "stopped", "streaming", "error")}
    answered_ok = complete >= answered and not figures["complete_without_text"] and not others and error <= swept
    cut_ok = (complete - answered) + stopped + streaming + min(error, swept) <= cut
    lines = [
        f"stored by {label}: {stored_line(figures)}",
        f"  answers the client got (200): {answered:,}; stored complete with text: {complete:,}"
        f"{f'; other statuses: {others}' if others else ''}; `error` {error:,}, of which closed by the stale-turn"
        f" sweep (log) {min(error, swept):,}, failed turns {error - min(error, swept):,}"
        f" → {'OK' if answered_ok else 'NOT OK'}",
        f"  connections closed while waiting (runs' ends): {cut:,}; their turns: {complete - answered:,} complete"
        f" unread, {stopped:,} stopped, {streaming:,} still streaming, {min(error, swept):,} swept as error"
        f" → {'OK' if cut_ok else 'NOT OK'}",
    ]
    if streaming or swept:
        lines.append("  (`streaming` answers no runner will finish — their client left while Conduit planned the turn,"
                     " or their runner died (see the log) — wait for the stale-turn sweep to close them as `error`,"
                     " ASSISTANT_STALE_TURN_AFTER = 60 s later, counting against the user's concurrent-turn limit"
                     " meanwhile)")  # fmt: skip
    return lines


def stored_line(figures: dict) -> str:
    statuses = ", ".join(f"{status} {count:,}" for status, count in sorted(figures["assistant"].items()))
    return (f"{figures['sessions']:,} sessions, {figures['messages']:,} messages; assistant messages: {statuses or 'none'};"
            f" complete without text: {figures['complete_without_text']}")  # fmt: skip


# --- LiteLLM's proxy -------------------------------------------------------------------------------


def litellm_pin() -> str:
    for line in LITELLM_REQUIREMENTS.read_text().splitlines():
        if line.startswith("litellm"):
            return line.split("==", 1)[1].strip()
    raise RuntimeError(f"{LITELLM_REQUIREMENTS} pins no litellm")


def litellm_install(venv: Path = LITELLM_VENV) -> Path:
    """The `litellm` command of `venv`, created and given bench/requirements-litellm.txt first when it
    lacks the pinned version (LiteLLM's pins conflict with Conduit's: it never goes into .venv)."""
    python = venv / "bin" / "python"
    wanted = litellm_pin()
    if python.exists():
        check = subprocess.run([str(python), "-c", "import importlib.metadata as m; print(m.version('litellm'))"],
                               capture_output=True, text=True, timeout=120)  # fmt: skip
        if check.stdout.strip() == wanted:
            return venv / "bin" / "litellm"
    print(f"installing LiteLLM {wanted} into {venv} (once; about a minute)", file=sys.stderr, flush=True)
    if not python.exists():
        subprocess.run([common.PYTHON, "-m", "venv", str(venv)], check=True, timeout=300)
    subprocess.run([str(python), "-m", "pip", "install", "-q", "-r", str(LITELLM_REQUIREMENTS)], check=True, timeout=1200)
    return venv / "bin" / "litellm"


@contextlib.contextmanager
def litellm_proxy(executable: Path, *, workdir: Path, upstream: str, master_key: str,
                  model_name: str = SLUG) -> Iterator[tuple[str, subprocess.Popen, int]]:
    """LiteLLM's proxy (uvicorn, one worker, no database, access log off as Conduit's is) with one
    model, `model_name` → `openai/gpt-test-1` at `upstream`; callers authenticate with `master_key`.
    Yields (base URL, the process, the pid of the process that serves)."""
    port = common.free_port()
    config = workdir / "litellm-config.yaml"
    config.write_text(json.dumps({  # YAML is a superset of JSON
        "model_list": [{"model_name": model_name, "litellm_params": {
            "model": f"openai/{UPSTREAM_MODEL}", "api_base": upstream, "api_key": "sk-fake"}}],
        "general_settings": {"master_key": master_key},
    }))  # fmt: skip
    # Nothing of Conduit's environment: LiteLLM would take DATABASE_URL / REDIS_URL as its own.
    env = {name: os.environ[name] for name in ("PATH", "HOME", "LANG", "LC_ALL", "TMPDIR") if name in os.environ}
    env.update(LITELLM_LOG="WARNING", LITELLM_LOCAL_MODEL_COST_MAP="True", PYTHONUNBUFFERED="1")
    command = [str(executable), "--config", str(config), "--host", "127.0.0.1", "--port", str(port), "--num_workers", "1"]
    log = (workdir / "litellm.log").open("wb")
    process = subprocess.Popen(command, cwd=workdir, env=env, stdout=log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        try:
            common.wait_for_http(f"{base}/health/liveliness", process=process, timeout=120)
        except RuntimeError as exc:
            tail = (workdir / "litellm.log").read_text(errors="replace")[-3000:]
            raise RuntimeError(f"LiteLLM did not start: {exc}\n{tail}") from None
        yield base, process, common.serving_pid(process.pid, port)
    finally:
        common.stop(process)
        log.close()


# --- a client on one kept-alive connection -------------------------------------------------------


class KeptAlive:
    """HTTP/1.1 requests on one socket (TCP_NODELAY), reopened only when the server closes it.
    `post` reads the whole answer (Content-Length or chunked) and, for a streamed one, notes when
    the first Server-Sent Event satisfying `is_content` arrived."""

    def __init__(self, base: str, timeout: float = 30):
        parts = urlsplit(base)
        self.host, self.port, self.timeout = parts.hostname, parts.port, timeout
        self.sock: socket.socket | None = None
        self.opened = 0

    def _connect(self) -> None:
        self.sock = socket.create_connection((self.host, self.port), timeout=self.timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buffer = b""
        self.opened += 1

    def close(self) -> None:
        if self.sock is not None:
            self.sock.close()
            self.sock = None

    def _recv(self) -> bytes:
        data = self.sock.recv(65536)
        if not data:
            raise ConnectionError("the server closed the connection")
        return data

    def _until(self, marker: bytes) -> bytes:
        while marker not in self.buffer:
            self.buffer += self._recv()
        head, self.buffer = self.buffer.split(marker, 1)
        return head

    def _exactly(self, size: int) -> bytes:
        while len(self.buffer) < size:
            self.buffer += self._recv()
        data, self.buffer = self.buffer[:size], self.buffer[size:]
        return data

    def post(self, path: str, body: str, headers: dict[str, str],
             is_content: Callable[[dict], bool] | None = None) -> tuple[int, float | None, float, bytes]:
        """(status, seconds to the first content event or None, seconds to the end, body)."""
        return self.request("POST", path, body, headers, is_content)

    def get(self, path: str, headers: dict[str, str] | None = None) -> tuple[int, float | None, float, bytes]:
        return self.request("GET", path, None, headers or {})

    def request(self, method: str, path: str, body: str | None, headers: dict[str, str],
                is_content: Callable[[dict], bool] | None = None) -> tuple[int, float | None, float, bytes]:
        if self.sock is None:
            self._connect()
        payload = body.encode() if body is not None else b""
        head = [f"{method} {path} HTTP/1.1", f"Host: {self.host}:{self.port}"]
        if body is not None:
            head += ["Content-Type: application/json", f"Content-Length: {len(payload)}"]
        head += [f"{k}: {v}" for k, v in headers.items()]
        request = ("\r\n".join(head) + "\r\n\r\n").encode() + payload
        started = time.perf_counter()
        first = None
        try:
            self.sock.sendall(request)
            response_head = self._until(b"\r\n\r\n").decode("latin-1")
            status = int(response_head[9:12])
            fields = {}
            for line in response_head.split("\r\n")[1:]:
                name, _, value = line.partition(":")
                fields[name.strip().lower()] = value.strip().lower()
            events = b""
            body_parts = []

            def take(data: bytes) -> None:
                nonlocal events, first
                body_parts.append(data)
                if is_content is None or first is not None:
                    return
                events += data
                while b"\n\n" in events:
                    event, events = events.split(b"\n\n", 1)
                    for line in event.split(b"\n"):
                        if line.startswith(b"data:") and line[5:].strip() not in (b"", b"[DONE]"):
                            if is_content(json.loads(line[5:])):
                                first = time.perf_counter() - started
                                return

            if fields.get("transfer-encoding") == "chunked":
                while True:
                    size = int(self._until(b"\r\n").split(b";")[0], 16)
                    if size == 0:
                        self._until(b"\r\n")  # no trailers
                        break
                    take(self._exactly(size))
                    self._exactly(2)
            elif "content-length" in fields:
                take(self._exactly(int(fields["content-length"])))
            else:  # until the server closes
                take(self.buffer)
                self.buffer = b""
                while data := self.sock.recv(65536):
                    take(data)
                self.close()
            if fields.get("connection") == "close":
                self.close()
            return status, first, time.perf_counter() - started, b"".join(body_parts)
        except BaseException:
            self.close()
            raise


class WebSocket:
    """A websocket client on one raw socket (RFC 6455: text frames, masked from the client): cheap
    enough that what it times is the server. `subprotocols` as the browser sends them."""

    def __init__(self, url: str, *, origin: str, subprotocols: list[str], timeout: float = 30):
        parts = urlsplit(url)
        self.sock = socket.create_connection((parts.hostname, parts.port), timeout=timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        key = base64.b64encode(os.urandom(16)).decode()
        head = [f"GET {parts.path} HTTP/1.1", f"Host: {parts.hostname}:{parts.port}", "Upgrade: websocket",
                "Connection: Upgrade", f"Sec-WebSocket-Key: {key}", "Sec-WebSocket-Version: 13",
                f"Sec-WebSocket-Protocol: {', '.join(subprotocols)}", f"Origin: {origin}"]  # fmt: skip
        self.sock.sendall(("\r\n".join(head) + "\r\n\r\n").encode())
        self.buffer = b""
        while b"\r\n\r\n" not in self.buffer:
            self.buffer += self._recv()
        response, self.buffer = self.buffer.split(b"\r\n\r\n", 1)
        if not response.startswith(b"HTTP/1.1 101"):
            raise ConnectionError(f"websocket refused: {response[:200]!r}")

    def _recv(self) -> bytes:
        data = self.sock.recv(65536)
        if not data:
            raise ConnectionError("the server closed the connection")
        return data

    def _exactly(self, size: int) -> bytes:
        while len(self.buffer) < size:
            self.buffer += self._recv()
        data, self.buffer = self.buffer[:size], self.buffer[size:]
        return data

    def _send_frame(self, opcode: int, payload: bytes) -> None:
        mask = os.urandom(4)
        size = len(payload)
        if size < 126:
            head = struct.pack("!BB", 0x80 | opcode, 0x80 | size)
        elif size < 1 << 16:
            head = struct.pack("!BBH", 0x80 | opcode, 0x80 | 126, size)
        else:
            head = struct.pack("!BBQ", 0x80 | opcode, 0x80 | 127, size)
        masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
        self.sock.sendall(head + mask + masked)

    def send_json(self, data: dict) -> None:
        self._send_frame(0x1, json.dumps(data).encode())

    def recv_json(self) -> dict:
        message = b""
        while True:
            first, second = self._exactly(2)
            size = second & 0x7F
            if size == 126:
                size = struct.unpack("!H", self._exactly(2))[0]
            elif size == 127:
                size = struct.unpack("!Q", self._exactly(8))[0]
            payload = self._exactly(size)  # server frames are not masked
            opcode = first & 0x0F
            if opcode == 0x9:  # ping
                self._send_frame(0xA, payload)
                continue
            if opcode == 0x8:
                code = struct.unpack("!H", payload[:2])[0] if len(payload) >= 2 else None
                raise ConnectionError(f"the server closed the websocket ({code})")
            if opcode in (0x0, 0x1, 0x2):
                message += payload
                if first & 0x80:
                    return json.loads(message)

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self._send_frame(0x8, struct.pack("!H", 1000))
        self.sock.close()
