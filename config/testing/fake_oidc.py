"""A fake OpenID provider for tests: a real HTTP server on 127.0.0.1 with real RSA keys.

Serves discovery (`/.well-known/openid-configuration`), the key set (`/.well-known/jwks.json`),
`/userinfo` (the claims registered for an access token) and a token endpoint (`/oauth/token`,
answering whatever `token_response` holds). `mint(...)` signs RS256 access tokens with the
current key; `stray_key` signs with a key the JWKS never lists; `rotate()` publishes a new key.

    with FakeOIDCProvider() as provider:
        token = provider.mint(sub="auth0|alice")
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from contextlib import ExitStack
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import urlsplit

import jwt
from cryptography.hazmat.primitives.asymmetric import rsa
from jwt.algorithms import RSAAlgorithm

from config.testing.servers import serve_http

DEFAULT_AUDIENCE = "https://conduit.test/api"


@dataclass
class SigningKey:
    kid: str
    private_key: rsa.RSAPrivateKey = field(repr=False)

    @classmethod
    def generate(cls) -> SigningKey:
        return cls(kid=uuid.uuid4().hex[:16], private_key=rsa.generate_private_key(public_exponent=65537, key_size=2048))

    def public_jwk(self) -> dict[str, Any]:
        jwk = RSAAlgorithm.to_jwk(self.private_key.public_key(), as_dict=True)
        return {**jwk, "kid": self.kid, "use": "sig", "alg": "RS256"}


class _Handler(BaseHTTPRequestHandler):
    server_version = "FakeOIDC/1"

    def log_message(self, *args) -> None:  # keep test output clean
        pass

    def _json(self, status: int, body: Any) -> None:
        payload = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        provider: FakeOIDCProvider = self.server.provider
        path = urlsplit(self.path).path
        with provider.lock:
            provider.requests.append(("GET", path))
        if path == "/.well-known/openid-configuration":
            self._json(200, provider.discovery())
        elif path == "/.well-known/jwks.json" and provider.jwks_down:
            self._json(503, {"error": "temporarily_unavailable"})
        elif path == "/.well-known/jwks.json":
            with provider.lock:
                provider.jwks_fetches += 1
                keys = [key.public_jwk() for key in provider.published_keys]
            self._json(200, {"keys": keys})
        elif path == "/userinfo":
            token = self.headers.get("Authorization", "").removeprefix("Bearer ")
            claims = provider.userinfo.get(token)
            if claims is None:
                self._json(401, {"error": "invalid_token"})
            else:
                self._json(200, claims)
        else:
            self._json(404, {"error": "not_found"})

    def do_POST(self) -> None:  # noqa: N802
        provider: FakeOIDCProvider = self.server.provider
        path = urlsplit(self.path).path
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length).decode()
        with provider.lock:
            provider.requests.append(("POST", path))
            if path == "/oauth/token":
                provider.token_requests.append(body)
        if path == "/oauth/token" and provider.token_response is not None:
            self._json(200, provider.token_response)
        else:
            self._json(400, {"error": "invalid_request"})


class FakeOIDCProvider:
    def __init__(self, *, audience: str = DEFAULT_AUDIENCE):
        self.audience = audience
        self.lock = threading.Lock()
        self.key = SigningKey.generate()
        self.published_keys: list[SigningKey] = [self.key]
        self.stray_key = SigningKey.generate()  # never in the JWKS
        self.jwks_fetches = 0
        self.jwks_down = False  # True: the JWKS answers 503
        self.requests: list[tuple[str, str]] = []
        self.userinfo: dict[str, dict[str, Any]] = {}  # access token → claims
        self.token_response: dict[str, Any] | None = None
        self.token_requests: list[str] = []
        self._stack = ExitStack()
        self.base_url = ""

    def __enter__(self) -> FakeOIDCProvider:
        server = self._stack.enter_context(serve_http(_Handler, provider=self))
        self.base_url = server.base_url
        return self

    def __exit__(self, *exc_info) -> None:
        self._stack.close()

    @property
    def issuer(self) -> str:
        return f"{self.base_url}/"

    @property
    def jwks_url(self) -> str:
        return f"{self.base_url}/.well-known/jwks.json"

    def discovery(self) -> dict[str, Any]:
        return {
            "issuer": self.issuer,
            "authorization_endpoint": f"{self.base_url}/authorize",
            "token_endpoint": f"{self.base_url}/oauth/token",
            "userinfo_endpoint": f"{self.base_url}/userinfo",
            "jwks_uri": self.jwks_url,
            "id_token_signing_alg_values_supported": ["RS256"],
        }

    def rotate(self) -> SigningKey:
        """Publish a new key and sign with it from now on (the old one stays published)."""
        new_key = SigningKey.generate()
        with self.lock:
            self.published_keys.append(new_key)
            self.key = new_key
        return new_key

    def mint(
        self,
        *,
        sub: str = "auth0|alice",
        aud: str | list[str] | None = None,
        iss: str | None = None,
        exp: int | None = None,
        iat: int | None = None,
        key: SigningKey | None = None,
        kid: str | None = None,
        algorithm: str = "RS256",
        **claims: Any,
    ) -> str:
        """An access token. Defaults make a valid one; each argument breaks one thing."""
        now = int(time.time())
        key = key or self.key
        payload = {
            "iss": self.issuer if iss is None else iss,
            "sub": sub,
            "aud": self.audience if aud is None else aud,
            "iat": now if iat is None else iat,
            "exp": now + 600 if exp is None else exp,
            "scope": "openid profile email",
            **claims,
        }
        payload = {name: value for name, value in payload.items() if value is not ...}  # `...` drops a claim
        return jwt.encode(payload, key.private_key, algorithm=algorithm, headers={"kid": kid or key.kid})
