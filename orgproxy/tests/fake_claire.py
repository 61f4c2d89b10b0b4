"""A fake Claire API: a real HTTP server on 127.0.0.1 that behaves like the upstream for the
calls the organization server makes, records every request, and can be scripted to fail.

    claire.fail("GET", "/m2m/organizations/bots", status=500)      # every such call, from now on
    claire.fail("GET", "/m2m/organizations/bots", raw=b"<html>")   # 200 with a non-JSON body
    claire.fail("GET", "/m2m/organizations/bots", delay=2)         # answer late (timeouts)
"""

from __future__ import annotations

import json
import re
import threading
import uuid
from contextlib import ExitStack
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from config.testing.servers import serve_http

API_KEY = "test-claire-key-7f3a9c-DO-NOT-LEAK"
ORG_ID = "org-0b6f3c9e-1d2a-4c5b-9e8f-123456789abc"
BOT_A = "bot-1a2b3c4d-0000-4000-8000-00000000000a"
BOT_B = "bot-1a2b3c4d-0000-4000-8000-00000000000b"


@dataclass
class Recorded:
    method: str
    path: str
    query: list[tuple[str, str]]
    headers: dict[str, str]
    body: Any  # parsed JSON, or None
    client_port: int = 0  # the caller's side of the TCP connection (keep-alive checks)


@dataclass
class Scripted:
    status: int = 200
    body: Any = None
    raw: bytes | None = None
    delay: float = 0.0


def new_id(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4()}"


class _Handler(BaseHTTPRequestHandler):
    server_version = "FakeClaire/1"
    protocol_version = "HTTP/1.1"  # keep-alive, like the real upstream

    def log_message(self, *args) -> None:
        pass

    def _handle(self) -> None:
        claire: FakeClaire = self.server.claire
        parts = urlsplit(self.path)
        length = int(self.headers.get("Content-Length") or 0)
        raw_body = self.rfile.read(length) if length else b""
        try:
            body = json.loads(raw_body) if raw_body else None
        except ValueError:
            body = raw_body.decode(errors="replace")
        recorded = Recorded(
            method=self.command,
            path=parts.path,
            query=parse_qsl(parts.query, keep_blank_values=True),
            headers={name.lower(): value for name, value in self.headers.items()},
            body=body,
            client_port=self.client_address[1],
        )
        with claire.lock:
            claire.requests.append(recorded)
            scripted = claire.scripts.get((self.command, parts.path))
        if scripted is None:
            scripted = claire.behave(recorded)
        if scripted.delay:
            claire.release.wait(scripted.delay)
        if scripted.raw is not None:
            payload, content_type = scripted.raw, "text/html"
        elif scripted.body is None:
            payload, content_type = b"", "application/json"
        else:
            payload, content_type = json.dumps(scripted.body).encode(), "application/json"
        try:
            self.send_response(scripted.status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(payload)))
            self.send_header("X-Request-ID", f"claire-{uuid.uuid4().hex[:8]}")
            self.end_headers()
            self.wfile.write(payload)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client gave up (timeout tests)

    do_GET = do_POST = do_DELETE = do_PUT = do_PATCH = _handle  # noqa: N815


class FakeClaire:
    def __init__(self, *, api_key: str = API_KEY):
        self.api_key = api_key
        self.lock = threading.Lock()
        self.release = threading.Event()
        self.requests: list[Recorded] = []
        self.scripts: dict[tuple[str, str], Scripted] = {}
        self.bots: list[dict[str, Any]] = [
            {"name": "Support", "bot_id": BOT_A, "meta": {"lang": "en"}},
            {"name": "Sales", "bot_id": BOT_B, "meta": None},
        ]
        # session id → {"user": external user id, "bot_id": ..., "messages": [...]}
        self.sessions: dict[str, dict[str, Any]] = {}
        self.user_tokens: set[str] = set()  # bearer tokens accepted by the api_keys endpoint
        self.created_key: dict[str, Any] | None = None
        self._stack = ExitStack()
        self.base_url = ""

    def __enter__(self) -> FakeClaire:
        server = self._stack.enter_context(serve_http(_Handler, claire=self))
        self.base_url = server.base_url
        return self

    def __exit__(self, *exc_info) -> None:
        self.release.set()
        self._stack.close()

    # --- scripting and inspection ---

    def fail(self, method: str, path: str, *, status: int = 200, body: Any = None, raw: bytes | None = None,
             delay: float = 0.0) -> None:
        with self.lock:
            self.scripts[(method, path)] = Scripted(status=status, body=body, raw=raw, delay=delay)

    def calls(self, method: str | None = None, path: str | None = None) -> list[Recorded]:
        with self.lock:
            return [r for r in self.requests if (method is None or r.method == method) and (path is None or r.path == path)]

    def add_session(self, *, user: str, bot_id: str = BOT_A, session_id: str | None = None) -> str:
        session_id = session_id or new_id("session")
        with self.lock:
            self.sessions[session_id] = {"user": user, "bot_id": bot_id, "messages": [{"role": "user", "text": "hi"}]}
        return session_id

    # --- the upstream's behaviour ---

    def _client_session(self, session_id: str) -> dict[str, Any]:
        return {
            "session": {"organization_id": ORG_ID, "session_id": session_id, "editable": "all_messages", "meta": {}},
            "token": f"session-token-{uuid.uuid4().hex}",
            "expires_in": 3600,  # an extra field the organization server does not pass on
        }

    def behave(self, request: Recorded) -> Scripted:
        if request.path.startswith("/organizations/"):
            return self._api_keys(request)
        if request.headers.get("authorization") != f"Bearer {self.api_key}":
            return Scripted(401, {"detail": "invalid api key"})
        method, path = request.method, request.path
        if (method, path) == ("GET", "/m2m/organizations/bots"):
            return Scripted(200, self.bots)
        if (method, path) == ("POST", "/m2m/client_sessions"):
            session_id = self.add_session(user=request.body["user"]["organization_user_id"], bot_id=request.body["bot_id"])
            return Scripted(200, self._client_session(session_id))
        if (method, path) == ("GET", "/m2m/client_sessions/"):
            query = request.query
            user = dict(query).get("external_user_id")
            bot_ids = {value for name, value in query if name == "bot_ids"}
            with self.lock:
                mine = [(sid, s) for sid, s in self.sessions.items() if s["user"] == user and s["bot_id"] in bot_ids]
            if not mine:
                return Scripted(404, {"detail": "no sessions"})
            results = [
                {
                    "organization_id": ORG_ID,
                    "session_id": sid,
                    "messages": s["messages"],
                    "bot_configuration": {"bot_id": s["bot_id"]},
                    "meta": {},
                    "internal_flag": True,  # not passed on
                }
                for sid, s in mine
            ]
            return Scripted(200, {"cursor": None, "results": results})
        match = re.fullmatch(r"/m2m/client_sessions/(session-[0-9a-f-]+)(/renew)?", path)
        if match:
            session_id, renew = match.groups()
            with self.lock:
                exists = session_id in self.sessions
                if exists and method == "DELETE" and not renew:
                    del self.sessions[session_id]
            if not exists:
                return Scripted(404, {"detail": "session not found"})
            if method == "POST" and renew:
                return Scripted(200, self._client_session(session_id))
            if method == "DELETE" and not renew:
                return Scripted(204)
        return Scripted(404, {"detail": "no such route"})

    def _api_keys(self, request: Recorded) -> Scripted:
        match = re.fullmatch(r"/organizations/(org-[0-9a-f-]+)/api_keys", request.path)
        if request.method != "POST" or not match:
            return Scripted(404, {"detail": "no such route"})
        token = request.headers.get("authorization", "").removeprefix("Bearer ")
        if token not in self.user_tokens:
            return Scripted(401, {"detail": "Could not validate credentials"})
        self.created_key = {
            "id": new_id("key"),
            "label": request.body["label"],
            "scopes": request.body["scopes"],
            "expires_at": request.body["expires_at"],
            "secret": f"ck_{uuid.uuid4().hex}",
        }
        return Scripted(201, self.created_key)
