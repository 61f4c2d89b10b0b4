"""An ordinary user's integration chooses the URLs OAuth discovery follows (the server's 401, its
protected resource metadata, the authorization server's metadata): each is a URL the user chose and
passes the egress policy. The attacks: a user's MCP server (on an allowed host) pointing discovery at
an internal service — by `resource_metadata`, by `authorization_servers`, by a registration endpoint,
by a `localhost` name, by a redirect. The internal service must never receive a request."""

from __future__ import annotations

import json
from http.server import BaseHTTPRequestHandler
from urllib.parse import urlsplit

import pytest

from agents.models import Integration
from config.testing.servers import serve_http
from connections.models import OAuthState
from connections.tests.conftest import api_for


class _Internal(BaseHTTPRequestHandler):
    """A service on the private network: counts what reaches it, answers like a metadata document."""

    def _answer(self) -> None:
        self.server.hits.append(self.path)
        body = json.dumps({"resource": "x", "authorization_servers": ["x"], "issuer": "x"}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_POST = _answer

    def log_message(self, *args) -> None:
        pass


class _Attacker(BaseHTTPRequestHandler):
    """The user's own MCP server, on a host staff allowed: its answers point elsewhere."""

    def _json(self, status: int, data: dict, headers: dict | None = None) -> None:
        body = json.dumps(data).encode()
        self.send_response(status)
        for name, value in {"Content-Type": "application/json", **(headers or {})}.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_POST(self) -> None:  # the unauthenticated MCP request
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self._json(401, {"error": "invalid_token"},
                   {"WWW-Authenticate": f'Bearer resource_metadata="{self.server.plan["resource_metadata"]}"'})

    def do_GET(self) -> None:
        base, plan = self.server.base_url, self.server.plan
        if self.path == "/prm":
            self._json(200, {"resource": f"{base}/mcp", "authorization_servers": [plan["issuer"]]})
        elif self.path == "/.well-known/oauth-authorization-server/as":
            self._json(200, {"issuer": f"{base}/as", "authorization_endpoint": f"{base}/as/authorize",
                             "token_endpoint": plan.get("token_endpoint") or f"{base}/as/token",
                             "registration_endpoint": plan["registration"],
                             "code_challenge_methods_supported": ["S256"]})  # fmt: skip
        elif self.path == "/redirect":
            self.send_response(302)
            self.send_header("Location", plan["redirect_to"])
            self.send_header("Content-Length", "0")
            self.end_headers()
        else:
            self._json(404, {})

    def log_message(self, *args) -> None:
        pass


@pytest.fixture(scope="module")
def internal():
    with serve_http(_Internal, hits=[]) as server:
        yield server


@pytest.fixture(scope="module")
def attacker():
    with serve_http(_Attacker, plan={}) as server:
        yield server


@pytest.fixture
def users_integration(db, user, attacker, internal, settings):
    settings.OUTBOUND_ALLOWED_HOSTS = [urlsplit(attacker.base_url).netloc]  # the user's server, not the internal one
    internal.hits.clear()
    attacker.plan.clear()
    attacker.plan.update(resource_metadata=f"{attacker.base_url}/prm", issuer=f"{attacker.base_url}/as",
                         registration=f"{attacker.base_url}/as/register", redirect_to="")  # fmt: skip
    return Integration.objects.create(name="mine", provider="custom", auth="oauth", owner=user,
                                      mcp_server={"type": "http", "url": f"{attacker.base_url}/mcp"})  # fmt: skip


def connect(user, integration):
    return api_for(user).post(f"/api/v1/integrations/{integration.pk}/connect", {}, format="json")


def refused(answer) -> str:
    assert answer.status_code == 400, answer.content
    return " ".join(answer.json()["detail"]["fields"]["non_field_errors"])


def test_resource_metadata_pointing_at_an_internal_host_is_refused(user, users_integration, attacker, internal):
    attacker.plan["resource_metadata"] = f"{internal.base_url}/latest/meta-data"

    message = refused(connect(user, users_integration))

    assert "may not connect to 127.0.0.1" in message and "loopback" in message
    assert internal.hits == [] and not OAuthState.objects.exists()


def test_an_authorization_server_on_an_internal_host_is_refused(user, users_integration, attacker, internal):
    attacker.plan["issuer"] = f"{internal.base_url}/admin"

    assert "may not connect" in refused(connect(user, users_integration))
    assert internal.hits == []


def test_a_registration_endpoint_on_an_internal_host_is_refused(user, users_integration, attacker, internal):
    attacker.plan["registration"] = f"{internal.base_url}/reset-everything"

    assert "may not connect" in refused(connect(user, users_integration))
    assert internal.hits == []


def test_a_localhost_name_is_refused_whatever_it_resolves_to(user, users_integration, attacker, internal):
    attacker.plan["resource_metadata"] = f"http://localhost:{internal.server_address[1]}/prm"

    assert "loopback name" in refused(connect(user, users_integration))
    assert internal.hits == []


def test_a_redirect_to_an_internal_host_is_not_followed(user, users_integration, attacker, internal):
    attacker.plan.update(resource_metadata=f"{attacker.base_url}/redirect", redirect_to=f"{internal.base_url}/prm")

    assert "no protected resource metadata" in refused(connect(user, users_integration))
    assert internal.hits == []


def test_the_same_discovery_on_the_allowed_host_gets_as_far_as_registration(user, users_integration, internal):
    # The control: on the allowed host every step is taken (this server has no registration to answer).
    assert "registration was refused" in refused(connect(user, users_integration))
    assert internal.hits == []


def test_a_token_endpoint_without_tls_is_refused(user, users_integration, attacker, internal):
    attacker.plan["token_endpoint"] = "http://tokens.example.com/token"

    assert "must use HTTPS" in refused(connect(user, users_integration))
