"""Clients for the streaming benchmarks: one model answer read through Conduit's websocket, through
its Server-Sent Events endpoint, or straight from the fake model (the baseline).

The fake model (bench/fakes.py anthropic) writes each text delta as `<index>:<moment sent>;`, so
every client here returns, per delta, its index, when the model sent it and when the client got
it: enough to check that nothing was lost, duplicated or reordered, and to time each delta."""

from __future__ import annotations

import asyncio
import json
import re
import time
import uuid
from dataclasses import dataclass, field
from urllib.parse import urlsplit

import websockets

from bench import common

STAMP = re.compile(r"(\d+):(\d+\.\d+);")


@dataclass
class Stream:
    deltas: list[tuple[int, float, float]] = field(default_factory=list)  # (index, sent, received)
    frames: int = 0
    error: str | None = None
    done: bool = False

    def take(self, text: str, received: float) -> None:
        self.frames += 1
        for index, sent in STAMP.findall(text):
            self.deltas.append((int(index), float(sent), received))

    def intact(self, expected: int) -> bool:
        """Completed, and got deltas 0..expected-1 exactly once each, in order."""
        return self.done and self.error is None and [d[0] for d in self.deltas] == list(range(expected))

    def delays_ms(self) -> list[float]:
        return [(received - sent) * 1000 for _, sent, received in self.deltas]


# --- seeding ----------------------------------------------------------------------------------

def seed_organization_agent(env: dict[str, str], model_url: str, slug: str) -> None:
    """What staff set up for code assistance: an organization agent `slug` on an organization config
    pointing at the fake model (built-in lookups read organization agents only)."""
    code = (
        "from agents import services;"
        f"config = services.llm_config_create(owner=None, name={slug!r}, model='claude-test-1', base_url={model_url!r},"
        " api_key='sk-bench', max_tokens=4096);"
        f"services.agent_create(owner=None, name='Bench agent', slug={slug!r}, system_prompt_text='Be brief.',"
        " llm_config=config)"
    )
    common.manage(env, "shell", "-c", code)


def seed_agent(base: str, token: str, model_url: str, slug: str) -> None:
    """An LLM config pointing at the fake model and an agent `slug` using it, made over the API."""
    status, config = common.http_json("POST", f"{base}/api/v1/llm-configs", {
        "name": f"Fake {uuid.uuid4().hex[:6]}", "provider": "anthropic", "model": "claude-test-1",
        "base_url": model_url, "api_key": "sk-bench", "max_tokens": 4096,
    }, token)  # fmt: skip
    if status != 201:
        raise RuntimeError(f"LLM config: {status} {config}")
    status, agent = common.http_json("POST", f"{base}/api/v1/agents", {
        "name": "Bench agent", "slug": slug, "system_prompt_text": "Be brief.", "llm_config": config["id"],
    }, token)  # fmt: skip
    if status != 201:
        raise RuntimeError(f"agent: {status} {agent}")


# --- clients ------------------------------------------------------------------------------------

async def websocket_turn(base: str, token: str, slug: str, *, timeout: float = 60) -> Stream:
    stream = Stream()
    url = base.replace("http://", "ws://") + "/ws/assistant/"
    try:
        async with websockets.connect(url, subprotocols=["jwt", token], origin=base,
                                      open_timeout=timeout, max_queue=None, ping_interval=None) as socket:
            await socket.send(json.dumps({"type": "start", "agent": slug, "message": "Go."}))
            deadline = time.monotonic() + timeout
            while True:
                raw = await asyncio.wait_for(socket.recv(), max(0.1, deadline - time.monotonic()))
                received = time.monotonic()
                frame = json.loads(raw)
                kind = frame["type"]
                if kind == "text_delta":
                    stream.take(frame["text"], received)
                elif kind == "error":
                    stream.error = f"{frame.get('code')}: {frame.get('message')}"
                    return stream
                elif kind == "result":
                    stream.done = frame.get("status") == "complete"
                    return stream
    except (OSError, asyncio.TimeoutError, websockets.WebSocketException) as exc:
        stream.error = f"{type(exc).__name__}: {exc}"
    return stream


async def _http_stream(url: str, body: dict, headers: dict[str, str], timeout: float):
    """POST `body`; yields (received moment, one SSE event's data) as events arrive."""
    parts = urlsplit(url)
    reader, writer = await asyncio.wait_for(asyncio.open_connection(parts.hostname, parts.port), timeout)
    try:
        payload = json.dumps(body).encode()
        head = [f"POST {parts.path} HTTP/1.1", f"Host: {parts.hostname}:{parts.port}", "Content-Type: application/json",
                "Accept: text/event-stream", f"Content-Length: {len(payload)}", "Connection: close"]
        head += [f"{k}: {v}" for k, v in headers.items()]
        writer.write(("\r\n".join(head) + "\r\n\r\n").encode() + payload)
        response_head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), timeout)
        status = int(response_head[9:12])
        if status != 200:
            raise RuntimeError(f"HTTP {status}: {(await reader.read(2000))[:300]!r}")
        chunked = b"transfer-encoding: chunked" in response_head.lower()
        buffer = b""
        while True:
            if chunked:
                size = int((await asyncio.wait_for(reader.readuntil(b"\r\n"), timeout)).split(b";")[0], 16)
                data = await asyncio.wait_for(reader.readexactly(size + 2), timeout)
                data = data[:-2]
                if size == 0:
                    return
            else:
                data = await asyncio.wait_for(reader.read(65536), timeout)
                if not data:
                    return
            received = time.monotonic()
            buffer += data
            while b"\n\n" in buffer:
                event, buffer = buffer.split(b"\n\n", 1)
                for line in event.split(b"\n"):
                    if line.startswith(b"data: "):
                        yield received, json.loads(line[6:])
    finally:
        writer.close()


async def sse_turn(base: str, token: str, *, timeout: float = 60) -> Stream:
    stream = Stream()
    try:
        async for received, event in _http_stream(f"{base}/api/v1/claude-code/code-assistance", {"prompt": "Go."},
                                                  {"Authorization": f"Bearer {token}"}, timeout):
            if event["type"] == "code_assistance":
                stream.take(event["content"], received)
            elif event["type"] == "error":
                stream.error = f"{event.get('error_code')}: {event.get('content')}"
                return stream
            if event.get("done"):
                stream.done = True
                return stream
    except (OSError, asyncio.TimeoutError, asyncio.IncompleteReadError, RuntimeError, ValueError) as exc:
        stream.error = f"{type(exc).__name__}: {exc}"
    return stream


async def direct_turn(model_url: str, *, timeout: float = 60) -> Stream:
    """The baseline: the same answer read straight from the fake model."""
    stream = Stream()
    body = {"model": "claude-test-1", "max_tokens": 4096, "stream": True, "messages": [{"role": "user", "content": "Go."}]}
    headers = {"x-api-key": "sk-bench", "anthropic-version": "2023-06-01"}
    try:
        async for received, event in _http_stream(f"{model_url}/v1/messages", body, headers, timeout):
            if event["type"] == "content_block_delta" and event["delta"]["type"] == "text_delta":
                stream.take(event["delta"]["text"], received)
            elif event["type"] == "message_stop":
                stream.done = True
                return stream
    except (OSError, asyncio.TimeoutError, asyncio.IncompleteReadError, RuntimeError, ValueError) as exc:
        stream.error = f"{type(exc).__name__}: {exc}"
    return stream


def percentile(values: list[float], fraction: float) -> float:
    values = sorted(values)
    if not values:
        return float("nan")
    return values[min(len(values) - 1, round(fraction * (len(values) - 1)))]
