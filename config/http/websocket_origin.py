"""The websocket's Origin check, by the rule Django applies to a form POST's Origin (CSRF):

- the page's own origin: the Origin's scheme, host and port are the request's own (its `Host`
  header, which must be one of ALLOWED_HOSTS; https when the request is secure, which behind a TLS
  proxy needs USE_X_FORWARDED_PROTO), default ports (80, 443) written or not;
- or one of CSRF_TRUSTED_ORIGINS (`https://chat.example.org`, `https://*.example.org`), scheme and
  port included.

Channels' AllowedHostsOriginValidator compared the host only: a page served on any other port of an
allowed host (another application on the same machine) could open a socket with the user's cookie.
A socket without an Origin (or `Origin: null`) is refused, as before.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from channels.security.websocket import WebsocketDenier
from django.conf import settings
from django.http.request import split_domain_port, validate_host
from django.utils.http import is_same_domain

DEFAULT_PORTS = {"http": 80, "https": 443}


def _origin_parts(origin: str) -> tuple[str, str, int] | None:
    """(scheme, host, port) of an origin, or None when it is not an http(s) origin."""
    try:
        parts = urlsplit(origin)
        port = parts.port
    except ValueError:
        return None
    if parts.scheme not in DEFAULT_PORTS or not parts.hostname or "@" in parts.netloc:
        return None
    if parts.path or parts.query or parts.fragment:
        return None
    return parts.scheme, parts.hostname, port or DEFAULT_PORTS[parts.scheme]


def _is_secure(headers: dict[bytes, bytes], scope: dict) -> bool:
    proxy_header = getattr(settings, "SECURE_PROXY_SSL_HEADER", None)
    if proxy_header:
        name, secure_value = proxy_header  # e.g. ("HTTP_X_FORWARDED_PROTO", "https")
        sent = headers.get(name.removeprefix("HTTP_").replace("_", "-").lower().encode("latin1"))
        if sent is not None:
            return sent.decode("latin1").split(",", 1)[0].strip() == secure_value
    return scope.get("scheme") in ("wss", "https")


def _trusted(parts: tuple[str, str, int]) -> bool:
    scheme, host, port = parts
    for trusted in settings.CSRF_TRUSTED_ORIGINS:
        wildcard = "://*." in trusted
        allowed = _origin_parts(trusted.replace("://*.", "://", 1))
        if allowed is None or allowed[0] != scheme or allowed[2] != port:
            continue
        if allowed[1] == host or (wildcard and is_same_domain(host, "." + allowed[1])):
            return True
    return False


def origin_allowed(scope: dict) -> bool:
    headers = dict(scope.get("headers") or [])
    origin = headers.get(b"origin", b"").decode("latin1")
    parts = _origin_parts(origin) if origin else None
    if parts is None:
        return False
    if _trusted(parts):
        return True
    host = headers.get(b"host", b"").decode("latin1")
    domain, port = split_domain_port(host)
    if not domain or not validate_host(domain, settings.ALLOWED_HOSTS):
        return False
    scheme = "https" if _is_secure(headers, scope) else "http"
    own = _origin_parts(f"{scheme}://{host}")
    return own is not None and own == parts


class OriginValidator:
    """Refuses (HTTP 403 at the handshake) a websocket whose Origin origin_allowed() refuses."""

    def __init__(self, application):
        self.application = application

    async def __call__(self, scope, receive, send):
        if scope["type"] == "websocket" and not origin_allowed(scope):
            return await WebsocketDenier()(scope, receive, send)
        return await self.application(scope, receive, send)
