"""An OAuth-protected MCP server and its authorization server, for the tests: real HTTP on 127.0.0.1.

One Starlette app (the MCP SDK's streamable HTTP server plus routes) served by uvicorn in a thread:
- `/mcp`: MCP, only with a bearer token this server issued for this resource and not expired or
  revoked; otherwise 401 with `WWW-Authenticate: Bearer resource_metadata=…`. Tool `whoami` answers
  the login the token was issued to.
- `/.well-known/oauth-protected-resource/mcp` (RFC 9728) → the issuer `<base>/as`, whose metadata is at
  `/.well-known/oauth-authorization-server/as` (RFC 8414, path inserted).
- `/as/register` (RFC 7591), `/as/authorize` (PKCE S256 and `resource` required; the test's browser
  logs in with `&login=<name>`), `/as/token` (code with its verifier, redirect URI and resource;
  rotating refresh tokens: a redeemed one redeemed again revokes the whole family, as real servers
  do), `/as/revoke` (RFC 7009).

Everything it saw is on `AuthState` for the tests to check.
"""

from __future__ import annotations

import base64
import hashlib
import secrets
import socket
import threading
import time
from collections import Counter
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Iterator
from urllib.parse import urlencode

from mcp.server.mcpserver import Context, MCPServer
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response


@dataclass
class AuthState:
    base: str = ""
    access_lifetime: int = 3600
    refuse_refresh: bool = False
    refresh_delay: float = 0.0  # seconds a refresh takes (widens the window of a race)
    clients: dict[str, dict] = field(default_factory=dict)
    codes: dict[str, dict] = field(default_factory=dict)
    access: dict[str, dict] = field(default_factory=dict)  # token → {login, resource, expires, family}
    refresh: dict[str, dict] = field(default_factory=dict)  # token → {login, client_id, resource, used, family}
    redeemed: Counter = field(default_factory=Counter)  # refresh token → times presented
    revoked: list[str] = field(default_factory=list)
    seen: list[tuple[str, str]] = field(default_factory=list)  # MCP requests: (token, login)
    token_requests: list[dict] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def resource(self) -> str:
        return f"{self.base}/mcp"

    @property
    def issuer(self) -> str:
        return f"{self.base}/as"

    def issue(self, *, login: str, client_id: str, resource: str, family: str) -> dict:
        access, refresh = secrets.token_urlsafe(24), secrets.token_urlsafe(24)
        self.access[access] = {"login": login, "resource": resource, "expires": time.time() + self.access_lifetime,
                               "family": family}  # fmt: skip
        self.refresh[refresh] = {"login": login, "client_id": client_id, "resource": resource, "used": False,
                                 "family": family}  # fmt: skip
        return {"access_token": access, "token_type": "Bearer", "expires_in": self.access_lifetime,
                "refresh_token": refresh, "scope": "notes.read"}  # fmt: skip

    def revoke_family(self, family: str) -> None:
        for store in (self.access, self.refresh):
            for token in [t for t, v in store.items() if v["family"] == family]:
                del store[token]


def _challenge(verifier: str) -> str:
    return base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()


def _error(error: str, status: int = 400) -> JSONResponse:
    return JSONResponse({"error": error}, status_code=status)


def build_app(state: AuthState):
    server = MCPServer("notes-oauth")

    @server.tool()
    def whoami(ctx: Context) -> str:
        """The login of the token this request came with."""
        header = ctx.request_context.request.headers.get("authorization", "")
        token = header.removeprefix("Bearer ")
        return state.access.get(token, {}).get("login", "nobody")

    @server.custom_route("/.well-known/oauth-protected-resource/mcp", methods=["GET"])
    async def resource_metadata(request: Request) -> Response:
        return JSONResponse({"resource": state.resource, "authorization_servers": [state.issuer],
                             "scopes_supported": ["notes.read"]})  # fmt: skip

    @server.custom_route("/.well-known/oauth-authorization-server/as", methods=["GET"])
    async def server_metadata(request: Request) -> Response:
        issuer = state.issuer
        return JSONResponse({
            "issuer": issuer, "authorization_endpoint": f"{issuer}/authorize", "token_endpoint": f"{issuer}/token",
            "registration_endpoint": f"{issuer}/register", "revocation_endpoint": f"{issuer}/revoke",
            "code_challenge_methods_supported": ["S256"], "scopes_supported": ["notes.read"],
            "response_types_supported": ["code"], "grant_types_supported": ["authorization_code", "refresh_token"],
        })  # fmt: skip

    @server.custom_route("/as/register", methods=["POST"])
    async def register(request: Request) -> Response:
        body = await request.json()
        uris = body.get("redirect_uris")
        if not isinstance(uris, list) or not uris:
            return _error("invalid_redirect_uri")
        client_id = f"client-{secrets.token_hex(6)}"
        with state.lock:
            state.clients[client_id] = {"redirect_uris": uris, "name": body.get("client_name")}
        return JSONResponse({"client_id": client_id, "redirect_uris": uris, "token_endpoint_auth_method": "none"},
                            status_code=201)  # fmt: skip

    @server.custom_route("/as/authorize", methods=["GET"])
    async def authorize(request: Request) -> Response:
        q = request.query_params
        client = state.clients.get(q.get("client_id", ""))
        if client is None or q.get("redirect_uri") not in client["redirect_uris"]:
            return _error("invalid_client")
        if q.get("response_type") != "code" or q.get("code_challenge_method") != "S256" or not q.get("code_challenge"):
            return _error("invalid_request")
        if q.get("resource") != state.resource:
            return _error("invalid_target")
        code = secrets.token_urlsafe(16)
        with state.lock:
            state.codes[code] = {"client_id": q["client_id"], "redirect_uri": q["redirect_uri"],
                                 "challenge": q["code_challenge"], "resource": q["resource"],
                                 "login": q.get("login", "someone")}  # fmt: skip
        return RedirectResponse(f"{q['redirect_uri']}?{urlencode({'code': code, 'state': q.get('state', '')})}", 302)

    @server.custom_route("/as/token", methods=["POST"])
    async def token(request: Request) -> Response:
        form = dict(await request.form())
        with state.lock:
            state.token_requests.append({k: v for k, v in form.items() if k != "code_verifier"})
        if form.get("grant_type") == "authorization_code":
            with state.lock:
                grant = state.codes.pop(form.get("code", ""), None)
            if grant is None or grant["client_id"] != form.get("client_id"):
                return _error("invalid_grant")
            if grant["redirect_uri"] != form.get("redirect_uri") or grant["resource"] != form.get("resource"):
                return _error("invalid_grant")
            if _challenge(form.get("code_verifier", "")) != grant["challenge"]:
                return _error("invalid_grant")
            with state.lock:
                return JSONResponse(state.issue(login=grant["login"], client_id=grant["client_id"],
                                                resource=grant["resource"], family=secrets.token_hex(4)))  # fmt: skip
        if form.get("grant_type") == "refresh_token":
            presented = form.get("refresh_token", "")
            if state.refresh_delay:
                import anyio

                await anyio.sleep(state.refresh_delay)
            with state.lock:
                state.redeemed[presented] += 1
                grant = state.refresh.get(presented)
                if grant is None or state.refuse_refresh or grant["client_id"] != form.get("client_id"):
                    return _error("invalid_grant")
                if grant["used"]:  # a replayed refresh token: the whole family is revoked
                    state.revoke_family(grant["family"])
                    return _error("invalid_grant")
                if form.get("resource") != grant["resource"]:
                    return _error("invalid_target")
                grant["used"] = True
                return JSONResponse(state.issue(login=grant["login"], client_id=grant["client_id"],
                                                resource=grant["resource"], family=grant["family"]))  # fmt: skip
        return _error("unsupported_grant_type")

    @server.custom_route("/as/revoke", methods=["POST"])
    async def revoke(request: Request) -> Response:
        form = dict(await request.form())
        with state.lock:
            token_value = form.get("token", "")
            state.revoked.append(token_value)
            state.access.pop(token_value, None)
            state.refresh.pop(token_value, None)
        return Response(status_code=200)

    inner = server.streamable_http_app()

    async def app(scope, receive, send):
        if scope["type"] == "http" and scope["path"].startswith("/mcp"):
            headers = dict(scope.get("headers") or [])
            token = headers.get(b"authorization", b"").decode().removeprefix("Bearer ")
            grant = state.access.get(token)
            if grant is None or grant["resource"] != state.resource or grant["expires"] < time.time():
                challenge = f'Bearer resource_metadata="{state.base}/.well-known/oauth-protected-resource/mcp"'
                response = JSONResponse({"error": "invalid_token"}, status_code=401,
                                        headers={"WWW-Authenticate": challenge})  # fmt: skip
                await response(scope, receive, send)
                return
            with state.lock:
                state.seen.append((token, grant["login"]))
        await inner(scope, receive, send)

    return app


@contextmanager
def oauth_mcp_server() -> Iterator[AuthState]:
    """The servers, running for the block; their state (`.base` is the base URL)."""
    import asyncio

    import uvicorn

    state = AuthState()
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(128)
    state.base = f"http://127.0.0.1:{sock.getsockname()[1]}"
    server = uvicorn.Server(uvicorn.Config(build_app(state), log_level="warning", lifespan="on"))
    thread = threading.Thread(target=lambda: asyncio.run(server.serve(sockets=[sock])), daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if time.monotonic() > deadline:
            raise AssertionError("the OAuth MCP server did not start")
        time.sleep(0.02)
    try:
        yield state
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()
