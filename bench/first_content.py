"""Benchmark (issue 26): how long a client waits for the first content of an answer, on every transport.

The clock starts when the client sends its request (or its websocket `start` frame) and stops when the
first event carrying answer text reaches it: everything before the model call counts (authentication,
planning the turn, the session and messages written), not only the relay of the model's first delta.
Sequential requests, one kept-alive connection per transport (reopened only if the server closes it:
the table says how many were opened), a few warm-ups first, the transports taking turns request by
request so that they share the machine's moods. The same fake OpenAI-compatible upstream
(bench/fakes.py openai: no delay, kept-alive, chunked, TCP_NODELAY) behind every one of them:

- upstream direct: the streamed Chat Completions request to the fake itself (the floor);
- LiteLLM's proxy (bench/requirements-litellm.txt, its own virtualenv, one worker, no database), streamed;
- Conduit `POST /v1/chat/completions` with `stream: true` (a personal API key);
- Conduit's run API `POST /api/v1/agents/{slug}/run` (the platform's SSE);
- Conduit's code assistance `POST /api/v1/claude-code/code-assistance` (SSE; CODE_ASSISTANCE_AGENT = the
  bench agent);
- Conduit's websocket `/ws/assistant/` (subprotocols ["jwt", access token], an Origin header): a `start`
  with the agent (a new session), then a `start` with that session's id (the next turn of an existing
  session, two messages of history), on one socket.

"added" is a transport's p50 minus the upstream's p50 of the same run. Then refused starts, timed whole
(status and body) as the client sees them, on `/v1/chat/completions` and on the run API: an unknown
agent (404), a user at the limit of concurrent turns (429 `too_many_turns`: the limit is 4 here, and that
user has 4 answers `streaming`), a user whose budget is used up (429 `budget_exceeded`). Finally what
Conduit stored for the timed user: every assistant message should be `complete`.

    .venv/bin/python bench/first_content.py [--requests 100] [--warmups 5] [--refusals 100]
"""

from __future__ import annotations

import argparse
import json
import secrets
import sys
import time
from pathlib import Path
from urllib.parse import urlsplit

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import common, turn_path  # noqa: E402
from bench.turn_path import SLUG  # noqa: E402

EMAIL = "bench-first@example.com"
BUSY = "bench-busy@example.com"  # at the limit of concurrent turns
BROKE = "bench-broke@example.com"  # budget used up
TURN_LIMIT = 4

_SEED_REFUSED = """
from accounts.models import User
from usage.models import Budget, UsageCounter
from usage.services import month_start
broke = User.objects.get(email={broke!r})
Budget.objects.create(user=broke, monthly_tokens=1)
UsageCounter.objects.create(user=broke, month=month_start(), input_tokens=100)
"""

# Answers `streaming` now (so not stale for ASSISTANT_STALE_TURN_AFTER, 60 s): made just before the refusals.
_SEED_BUSY = """
from accounts.models import User
from agents import services as agents
from agents.models import AIAgent, Message
busy = User.objects.get(email={busy!r})
agent = AIAgent.objects.get(owner__isnull=True, slug={slug!r})
for _ in range({count}):
    session = agents.session_create(owner=busy, agent=agent, title="busy")
    agents.message_append(session=session, role=Message.Role.ASSISTANT, content=[], status=Message.Status.STREAMING)
"""


def openai_content(event: dict) -> bool:
    return any((choice.get("delta") or {}).get("content") for choice in event.get("choices") or [])


class HttpTransport:
    def __init__(self, base: str, path: str, body: str, key: str, is_content):
        self.client = turn_path.KeptAlive(base)
        self.path, self.body, self.is_content = path, body, is_content
        self.headers = {"Authorization": f"Bearer {key}", "Accept": "text/event-stream"}

    def one(self) -> tuple[float, float]:
        status, first, whole, body = self.client.post(self.path, self.body, self.headers, self.is_content)
        if status != 200 or first is None:
            raise RuntimeError(f"POST {self.path}: {status}, first content {first}: {body[:300]!r}")
        return first, whole

    @property
    def opened(self) -> int:
        return self.client.opened

    def close(self) -> None:
        self.client.close()


class WebSocketTurns:
    """A new session's first turn and that session's next turn, on one socket; `one` times the
    first, `second` the next (a `start` with the session's id)."""

    def __init__(self, base: str, token: str):
        self.url, self.origin, self.token = base.replace("http://", "ws://") + "/ws/assistant/", base, token
        self.socket: turn_path.WebSocket | None = None
        self.opened = 0
        self.session_id = None

    def _turn(self, start: dict) -> tuple[float, float]:
        if self.socket is None:
            self.socket = turn_path.WebSocket(self.url, origin=self.origin, subprotocols=["jwt", self.token])
            self.opened += 1
        started = time.perf_counter()
        self.socket.send_json(start)
        first = None
        while True:
            frame = self.socket.recv_json()
            if frame["type"] == "text_delta" and frame.get("text") and first is None:
                first = time.perf_counter() - started
            elif frame["type"] == "session":
                self.session_id = frame["session_id"]
            elif frame["type"] == "error":
                raise RuntimeError(f"websocket turn: {frame}")
            elif frame["type"] == "result":
                if frame.get("status") != "complete" or first is None:
                    raise RuntimeError(f"websocket turn: {frame}")
                return first, time.perf_counter() - started

    def one(self) -> tuple[float, float]:
        return self._turn({"type": "start", "agent": SLUG, "message": turn_path.PROMPT})

    def second(self) -> tuple[float, float]:
        return self._turn({"type": "start", "session_id": self.session_id, "message": turn_path.PROMPT})

    def close(self) -> None:
        if self.socket is not None:
            self.socket.close()


class SecondTurn:
    """The websocket's next-turn measure, as a transport of its own (after WebSocketTurns.one)."""

    def __init__(self, turns: WebSocketTurns):
        self.turns = turns

    def one(self) -> tuple[float, float]:
        return self.turns.second()

    @property
    def opened(self) -> int:
        return 0

    def close(self) -> None:
        pass


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=100, help="timed requests per transport")
    parser.add_argument("--warmups", type=int, default=5, help="untimed requests per transport first")
    parser.add_argument("--refusals", type=int, default=100, help="timed refused starts per kind and endpoint")
    parser.add_argument("--chunks", type=int, default=5, help="text deltas of the fake model's answer")
    parser.add_argument("--litellm-venv", type=Path, default=turn_path.LITELLM_VENV)
    parser.add_argument("--json", help="also write the figures to this file")
    args = parser.parse_args()
    litellm = turn_path.litellm_install(args.litellm_venv)
    common.print_machine()
    load_before = common.load_average()
    print(f"loadavg before: {load_before}", flush=True)

    with common.workdir() as tmp, common.fake("openai", str(args.chunks)) as upstream:
        env = turn_path.turn_env(tmp, CODE_ASSISTANCE_AGENT=SLUG, ASSISTANT_MAX_CONCURRENT_TURNS_PER_USER=str(TURN_LIMIT))
        common.prepare_database(env)
        keys = turn_path.seed(env, model_url=upstream, emails=[EMAIL, BUSY, BROKE])
        common.manage(env, "shell", "-c", _SEED_REFUSED.format(broke=BROKE))
        master_key = "sk-bench-" + secrets.token_hex(8)
        with common.conduit(env, log=tmp / "conduit.log") as (base, _supervisor), \
                turn_path.litellm_proxy(litellm, workdir=tmp, upstream=upstream, master_key=master_key) as \
                (litellm_base, _process, _pid):  # fmt: skip
            token = common.login(base, EMAIL)
            stream_body = turn_path.chat_body(stream=True)
            upstream_parts = urlsplit(upstream)
            upstream_body = json.dumps({**json.loads(stream_body), "model": turn_path.UPSTREAM_MODEL})
            websocket = WebSocketTurns(base, token)
            transports = {
                "upstream direct (streamed)": HttpTransport(
                    f"http://{upstream_parts.netloc}", upstream_parts.path + "/chat/completions", upstream_body,
                    "sk-fake", openai_content),
                "LiteLLM /v1/chat/completions (streamed)": HttpTransport(
                    litellm_base, "/v1/chat/completions", stream_body, master_key, openai_content),
                "Conduit /v1/chat/completions (streamed)": HttpTransport(
                    base, "/v1/chat/completions", stream_body, keys[EMAIL], openai_content),
                "Conduit run API (SSE)": HttpTransport(
                    base, f"/api/v1/agents/{SLUG}/run", json.dumps({"message": turn_path.PROMPT}), keys[EMAIL],
                    lambda event: event.get("type") == "text_delta" and bool(event.get("text"))),
                "Conduit code assistance (SSE)": HttpTransport(
                    base, "/api/v1/claude-code/code-assistance", json.dumps({"prompt": turn_path.PROMPT}), keys[EMAIL],
                    lambda event: event.get("type") == "code_assistance" and bool(event.get("content"))),
                "Conduit websocket, new session": websocket,
                "Conduit websocket, next turn": SecondTurn(websocket),
            }  # fmt: skip
            timings: dict[str, list[tuple[float, float]]] = {name: [] for name in transports}
            try:
                for index in range(args.warmups + args.requests):
                    for name, transport in transports.items():
                        figures = transport.one()
                        if index >= args.warmups:
                            timings[name].append(figures)
                opened = {name: transport.opened for name, transport in transports.items()}
            finally:
                for transport in transports.values():
                    transport.close()
            common.manage(env, "shell", "-c", _SEED_BUSY.format(busy=BUSY, slug=SLUG, count=TURN_LIMIT))
            refusals = measure_refusals(base, keys, args.refusals)
            stored = turn_path.stored(env, EMAIL)
        logs = [line for name in ("conduit.log", "litellm.log") for line in common.log_summary(tmp / name)]
    load_after = common.load_average()

    direct = common.percentile([first for first, _ in timings["upstream direct (streamed)"]], 0.5) * 1000
    rows = []
    for name, values in timings.items():
        firsts = [first * 1000 for first, _ in values]
        p50 = common.percentile(firsts, 0.5)
        rows.append([name, f"{p50:.2f}", f"{common.percentile(firsts, 0.9):.2f}", f"{p50 - direct:.2f}",
                     f"{common.percentile([whole * 1000 for _, whole in values], 0.5):.2f}",
                     opened[name] if name != "Conduit websocket, next turn" else "(same)"])  # fmt: skip
    print()
    print(f"loadavg before {load_before}, after {load_after}; {args.requests} sequential requests per transport"
          f" (after {args.warmups} warm-ups), transports taking turns; fake answer of {args.chunks} deltas")  # fmt: skip
    print("First content: client sends → first answer text reaches it")
    print(common.table(["transport", "p50 ms", "p90 ms", "added over upstream (p50) ms", "whole answer p50 ms",
                        "connections opened"], rows))  # fmt: skip
    print()
    print(f"Refused starts ({args.refusals} each), client-observed, whole answer")
    print(common.table(["refusal", "status", "p50 ms", "p99 ms", "max ms", "unexpected answers"],
                       [[name, r["status"], f"{r['p50_ms']:.2f}", f"{r['p99_ms']:.2f}", f"{r['max_ms']:.2f}",
                         r["unexpected"] or "-"] for name, r in refusals.items()]))  # fmt: skip
    print()
    print("\n".join(logs))
    expected = (args.warmups + args.requests) * 5  # five Conduit turns per round (websocket: two)
    verdict = "OK" if (stored["assistant"] == {"complete": expected} and not stored["complete_without_text"]) else "NOT OK"
    print(f"stored by Conduit for {EMAIL}: {turn_path.stored_line(stored)}; turns run {expected:,} → {verdict}")
    if args.json:
        Path(args.json).write_text(json.dumps({
            "machine": common.machine(), "loadavg": [load_before, load_after], "timings": timings,
            "refusals": refusals, "stored": stored,
        }, indent=1))  # fmt: skip


def measure_refusals(base: str, keys: dict[str, str], count: int) -> dict[str, dict]:
    client = turn_path.KeptAlive(base)
    cases = [
        ("/v1/chat/completions, unknown model", EMAIL, "/v1/chat/completions", turn_path.chat_body(model="no-such-agent"),
         404, "model_not_found"),
        ("/v1/chat/completions, too many turns", BUSY, "/v1/chat/completions", turn_path.chat_body(), 429, "too_many_turns"),
        ("/v1/chat/completions, budget used up", BROKE, "/v1/chat/completions", turn_path.chat_body(), 429,
         "insufficient_quota"),  # budget_exceeded, as OpenAI's clients know a spent quota
        ("run API, unknown agent", EMAIL, "/api/v1/agents/no-such-agent/run", json.dumps({"message": "Hello"}), 404,
         "not_found"),
        ("run API, too many turns", BUSY, f"/api/v1/agents/{SLUG}/run", json.dumps({"message": "Hello"}), 429,
         "too_many_turns"),
        ("run API, budget used up", BROKE, f"/api/v1/agents/{SLUG}/run", json.dumps({"message": "Hello"}), 429,
         "budget_exceeded"),
    ]  # fmt: skip
    results = {}
    try:
        for name, email, path, body, status, code in cases:
            headers = {"Authorization": f"Bearer {keys[email]}"}
            times, unexpected = [], {}
            for index in range(count + 3):
                got, _, whole, answer = client.post(path, body, headers)
                if got != status or code.encode() not in answer:
                    key = f"{got} {answer[:120].decode(errors='replace')}"
                    unexpected[key] = unexpected.get(key, 0) + 1
                if index >= 3:
                    times.append(whole * 1000)
            results[name] = {"status": f"{status} {code}", "p50_ms": common.percentile(times, 0.5),
                             "p99_ms": common.percentile(times, 0.99), "max_ms": max(times),
                             "unexpected": "; ".join(f"{n}× {k}" for k, n in unexpected.items())}  # fmt: skip
    finally:
        client.close()
    return results


if __name__ == "__main__":
    main()
