"""The OAuth client the MCP authorization spec (2025-06-18) asks for, over connections/http.py.

An unauthenticated MCP request's 401 names the protected resource metadata (`WWW-Authenticate:
Bearer resource_metadata="…"`, RFC 9728; else its well-known URL); that names the authorization
server, whose metadata is read (RFC 8414, else OpenID Connect discovery); the client registers
dynamically (RFC 7591) unless staff entered one; authorization code with PKCE S256 and `resource`
(RFC 8707) on both the authorization and the token requests; refresh; revocation (RFC 7009).

Nothing here logs or puts a token in an exception's message.
"""

from __future__ import annotations

import base64
import hashlib
import re
import secrets
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode, urlsplit, urlunsplit

import requests

from config import egress
from connections import http


class OAuthError(Exception):
    """The authorization flow can't go on; `str()` is for people and holds no secret.
    `refused`: the authorization server said no (invalid_grant …), not a network failure."""

    def __init__(self, message: str, *, refused: bool = False):
        super().__init__(message)
        self.refused = refused


@dataclass(frozen=True)
class ServerAuth:
    """What discovery found for one MCP server."""

    resource: str
    issuer: str
    authorization_endpoint: str
    token_endpoint: str
    registration_endpoint: str
    revocation_endpoint: str
    scopes_supported: tuple[str, ...]


@dataclass(frozen=True)
class Client:
    client_id: str
    client_secret: str
    auth_method: str  # none | client_secret_basic | client_secret_post


@dataclass(frozen=True)
class Tokens:
    access_token: str
    refresh_token: str
    expires_in: int | None
    scope: str


# --- discovery ------------------------------------------------------------------------------------

_RESOURCE_METADATA = re.compile(r'resource_metadata\s*=\s*(?:"([^"]*)"|([^\s,]+))', re.IGNORECASE)
_PROBE = {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
    "protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "conduit", "version": "1"}}}  # fmt: skip


def _get(url: str, *, guarded: bool, **kwargs: Any) -> requests.Response:
    return _call("GET", url, guarded=guarded, **kwargs)


def _call(method: str, url: str, *, guarded: bool, **kwargs: Any) -> requests.Response:
    parts = urlsplit(url)
    if parts.scheme not in {"http", "https"} or not parts.hostname:
        raise OAuthError(f"Not an http(s) URL: {_show(url)}.")
    try:
        return http.request(method, url, guarded=guarded, **kwargs)
    except egress.EgressRefused as refused:
        raise OAuthError(str(refused)) from None
    except requests.RequestException:
        raise OAuthError(f"Could not reach {_show(url)}.") from None


def _show(url: str) -> str:
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc.rpartition("@")[2], parts.path, "", ""))


def _json(response: requests.Response, what: str) -> dict[str, Any]:
    try:
        data = response.json()
    except ValueError:
        data = None
    if response.status_code != 200 or not isinstance(data, dict):
        raise OAuthError(f"{what} at {_show(response.url)} answered HTTP {response.status_code} without a JSON object.")
    return data


def _well_known(url: str, name: str) -> list[str]:
    """RFC 8414/9728 URLs: the well-known name inserted before the path, then at the origin's root."""
    parts = urlsplit(url)
    path = parts.path.rstrip("/")
    origin = f"{parts.scheme}://{parts.netloc}"
    urls = [f"{origin}/.well-known/{name}{path}"] if path else []
    return [*urls, f"{origin}/.well-known/{name}"]


def same_resource(resource: str, server_url: str) -> bool:
    """`resource` identifies the server at `server_url`: same origin, a prefix of its path (RFC 8707's
    resource indicator; for a personal token, the server's URL when it was given)."""
    a, b = urlsplit(resource), urlsplit(server_url)
    if (a.scheme, a.netloc.lower()) != (b.scheme, b.netloc.lower()):
        return False
    prefix = a.path.rstrip("/")
    return b.path == prefix or b.path.startswith(prefix + "/") or not prefix


def discover(server_url: str, *, guarded: bool) -> ServerAuth:
    """What the MCP server at `server_url` needs of an OAuth client. OAuthError."""
    probe = _call("POST", server_url, guarded=guarded, json=_PROBE,
                  headers={"Accept": "application/json, text/event-stream"})  # fmt: skip
    candidates = _well_known(server_url, "oauth-protected-resource")
    match = _RESOURCE_METADATA.search(probe.headers.get("WWW-Authenticate", "")) if probe.status_code == 401 else None
    if match:
        candidates = [match.group(1) or match.group(2)]
    elif probe.status_code not in {401, 403}:
        raise OAuthError(f"The MCP server at {_show(server_url)} did not ask for authorization "
                         f"(HTTP {probe.status_code} to an unauthenticated request).")  # fmt: skip
    metadata = None
    for url in candidates:
        response = _get(url, guarded=guarded, headers={"Accept": "application/json"})
        if response.status_code == 200:
            metadata = _json(response, "The protected resource metadata")
            break
    if metadata is None:
        raise OAuthError(f"The MCP server at {_show(server_url)} publishes no protected resource metadata.")
    resource = metadata.get("resource")
    servers = metadata.get("authorization_servers")
    if not isinstance(resource, str) or not same_resource(resource, server_url):
        raise OAuthError("The protected resource metadata names another resource than the MCP server.")
    if not isinstance(servers, list) or not servers or not isinstance(servers[0], str):
        raise OAuthError("The protected resource metadata names no authorization server.")
    return _authorization_server(servers[0], resource=resource, guarded=guarded)


def _secure(url: str) -> bool:
    """HTTPS, or a loopback host (OAuth 2.1: authorization server endpoints are served over TLS)."""
    parts = urlsplit(url)
    if parts.scheme == "https":
        return True
    host = (parts.hostname or "").rstrip(".").lower()
    address = egress.ip_literal(host)
    return host == "localhost" or (address is not None and address.is_loopback)


def _authorization_server(issuer: str, *, resource: str, guarded: bool) -> ServerAuth:
    parts = urlsplit(issuer)
    root = f"{parts.scheme}://{parts.netloc}"
    path = parts.path.rstrip("/")
    candidates = [*_well_known(issuer, "oauth-authorization-server"), *_well_known(issuer, "openid-configuration")]
    if path:
        candidates.append(f"{root}{path}/.well-known/openid-configuration")
    for url in dict.fromkeys(candidates):
        response = _get(url, guarded=guarded, headers={"Accept": "application/json"})
        if response.status_code == 200:
            data = _json(response, "The authorization server's metadata")
            break
    else:
        raise OAuthError(f"The authorization server {_show(issuer)} publishes no metadata.")
    if str(data.get("issuer", "")).rstrip("/") != issuer.rstrip("/"):
        raise OAuthError("The authorization server's metadata names another issuer.")
    methods = data.get("code_challenge_methods_supported")
    if not isinstance(methods, list) or "S256" not in methods:
        raise OAuthError("The authorization server does not offer PKCE with S256.")
    endpoints = {}
    for name in ("authorization_endpoint", "token_endpoint", "registration_endpoint", "revocation_endpoint"):
        value = data.get(name) or ""
        if value and (not isinstance(value, str) or urlsplit(value).scheme not in {"http", "https"}):
            raise OAuthError(f"The authorization server's {name} is not an http(s) URL.")
        if value and not _secure(value):
            raise OAuthError(f"The authorization server's {name} must use HTTPS (codes and tokens cross it).")
        endpoints[name] = value
    if not endpoints["authorization_endpoint"] or not endpoints["token_endpoint"]:
        raise OAuthError("The authorization server's metadata lacks its authorization or token endpoint.")
    scopes = data.get("scopes_supported")
    return ServerAuth(
        resource=resource, issuer=issuer, **endpoints,
        scopes_supported=tuple(s for s in scopes if isinstance(s, str)) if isinstance(scopes, list) else (),
    )  # fmt: skip


# --- registration and authorization --------------------------------------------------------------


def register(server: ServerAuth, *, redirect_uri: str, client_name: str, guarded: bool) -> Client:
    """Dynamic client registration (RFC 7591): a public client using PKCE."""
    if not server.registration_endpoint:
        raise OAuthError("The authorization server offers no dynamic registration; staff must enter a client id.")
    body = {"client_name": client_name, "redirect_uris": [redirect_uri], "grant_types": ["authorization_code",
            "refresh_token"], "response_types": ["code"], "token_endpoint_auth_method": "none"}  # fmt: skip
    response = _call("POST", server.registration_endpoint, guarded=guarded, json=body)
    if response.status_code not in {200, 201}:
        raise OAuthError(f"Dynamic registration was refused (HTTP {response.status_code}).")
    data = _json_any(response)
    if not isinstance(data.get("client_id"), str) or not data["client_id"]:
        raise OAuthError("Dynamic registration answered no client_id.")
    secret = data.get("client_secret") if isinstance(data.get("client_secret"), str) else ""
    method = data.get("token_endpoint_auth_method") or ("client_secret_basic" if secret else "none")
    return Client(data["client_id"], secret, str(method))


def _json_any(response: requests.Response) -> dict[str, Any]:
    try:
        data = response.json()
    except ValueError:
        return {}
    return data if isinstance(data, dict) else {}


def pkce_pair() -> tuple[str, str]:
    """(verifier, S256 challenge), RFC 7636."""
    verifier = secrets.token_urlsafe(64)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    return verifier, challenge


def authorize_url(*, endpoint: str, client_id: str, redirect_uri: str, state: str, challenge: str, resource: str,
                  scope: str) -> str:  # fmt: skip
    params = {"response_type": "code", "client_id": client_id, "redirect_uri": redirect_uri, "state": state,
              "code_challenge": challenge, "code_challenge_method": "S256", "resource": resource}  # fmt: skip
    if scope:
        params["scope"] = scope
    separator = "&" if urlsplit(endpoint).query else "?"
    return f"{endpoint}{separator}{urlencode(params)}"


# --- tokens ----------------------------------------------------------------------------------------


def _token_request(endpoint: str, client: Client, form: dict[str, str], *, guarded: bool) -> Tokens:
    auth = None
    form = dict(form)
    if client.client_secret and client.auth_method == "client_secret_basic":
        from urllib.parse import quote

        auth = (quote(client.client_id, safe=""), quote(client.client_secret, safe=""))
    else:
        form["client_id"] = client.client_id
        if client.client_secret:
            form["client_secret"] = client.client_secret
    response = _call("POST", endpoint, guarded=guarded, data=form, auth=auth, headers={"Accept": "application/json"})
    data = _json_any(response)
    if response.status_code != 200:
        error = data.get("error") if isinstance(data.get("error"), str) else f"HTTP {response.status_code}"
        refused = 400 <= response.status_code < 500
        raise OAuthError(f"The authorization server refused the token request ({error[:100]}).", refused=refused)
    token = data.get("access_token")
    if not isinstance(token, str) or not token or str(data.get("token_type", "")).lower() != "bearer":
        raise OAuthError("The token answer holds no bearer access token.")
    expires = data.get("expires_in")
    return Tokens(
        access_token=token,
        refresh_token=data["refresh_token"] if isinstance(data.get("refresh_token"), str) else "",
        expires_in=int(expires) if isinstance(expires, (int, float)) and expires > 0 else None,
        scope=data["scope"] if isinstance(data.get("scope"), str) else "",
    )


def exchange_code(*, endpoint: str, client: Client, code: str, verifier: str, redirect_uri: str, resource: str,
                  guarded: bool) -> Tokens:  # fmt: skip
    form = {"grant_type": "authorization_code", "code": code, "code_verifier": verifier,
            "redirect_uri": redirect_uri, "resource": resource}  # fmt: skip
    return _token_request(endpoint, client, form, guarded=guarded)


def refresh(*, endpoint: str, client: Client, refresh_token: str, resource: str, guarded: bool) -> Tokens:
    form = {"grant_type": "refresh_token", "refresh_token": refresh_token, "resource": resource}
    return _token_request(endpoint, client, form, guarded=guarded)


def revoke(*, endpoint: str, client: Client, token: str, hint: str, guarded: bool) -> bool:
    """RFC 7009; whether the server accepted it (200)."""
    form = {"token": token, "token_type_hint": hint}
    auth = None
    if client.client_secret and client.auth_method == "client_secret_basic":
        auth = (client.client_id, client.client_secret)
    else:
        form["client_id"] = client.client_id
        if client.client_secret:
            form["client_secret"] = client.client_secret
    return _call("POST", endpoint, guarded=guarded, data=form, auth=auth).status_code == 200
