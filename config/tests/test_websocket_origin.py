"""The websocket Origin check (config/http/websocket_origin.py) compares scheme, host and port: the page's
own origin (Host one of ALLOWED_HOSTS, https when the request is secure) or one of
CSRF_TRUSTED_ORIGINS. Channels' AllowedHostsOriginValidator, used before, took any port of an
allowed host."""

from __future__ import annotations

import pytest
from channels.testing import WebsocketCommunicator

from config.asgi import application
from config.http.websocket_origin import origin_allowed


def allowed(origin: str | None, host: str = "localhost:8000", **headers: str) -> bool:
    sent = [(b"host", host.encode())] if host else []
    sent += [(name.replace("_", "-").encode(), value.encode()) for name, value in headers.items()]
    if origin is not None:
        sent.append((b"origin", origin.encode()))
    return origin_allowed({"type": "websocket", "headers": sent})


@pytest.fixture(autouse=True)
def hosts(settings):
    settings.ALLOWED_HOSTS = ["localhost", "conduit.example.org"]
    settings.CSRF_TRUSTED_ORIGINS = []


def test_the_pages_own_scheme_host_and_port_are_allowed():
    assert allowed("http://localhost:8000")
    assert allowed("http://LOCALHOST:8000")
    assert allowed("http://conduit.example.org", host="conduit.example.org")
    assert allowed("http://conduit.example.org:80", host="conduit.example.org")  # default ports, written or not
    assert allowed("http://conduit.example.org", host="conduit.example.org:80")


@pytest.mark.parametrize(
    "origin",
    [
        "http://localhost:9000",  # another application on the same host
        "http://localhost",
        "https://localhost:8000",
        "ws://localhost:8000",
        "http://localhost:8000/",
        "http://localhost:8000/chat",
        "http://evil@localhost:8000",
        "http://localhost:notaport",
        "http://localhost:99999",
        "http://[",
        "null",
        "",
        None,
    ],
)
def test_any_other_origin_is_refused(origin):
    assert not allowed(origin)


def test_the_host_must_be_allowed_too():
    assert not allowed("http://elsewhere.example:8000", host="elsewhere.example:8000")
    assert not allowed("http://localhost:8000", host="")
    assert not allowed("http://[::1]:8000", host="[::1]:8000")


def test_ipv6_hosts(settings):
    settings.ALLOWED_HOSTS = ["[::1]"]
    assert allowed("http://[::1]:8000", host="[::1]:8000")
    assert not allowed("http://[::1]:8001", host="[::1]:8000")


def test_behind_a_tls_proxy_the_pages_origin_is_https(settings):
    settings.SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    host = "conduit.example.org"
    assert allowed("https://conduit.example.org", host=host, x_forwarded_proto="https")
    assert not allowed("http://conduit.example.org", host=host, x_forwarded_proto="https")
    assert not allowed("https://conduit.example.org", host=host)  # the proxy didn't say https
    assert allowed("http://conduit.example.org", host=host, x_forwarded_proto="http")


def test_without_use_x_forwarded_proto_the_header_is_ignored():
    assert not allowed("https://conduit.example.org", host="conduit.example.org", x_forwarded_proto="https")


def test_csrf_trusted_origins_are_allowed_with_their_scheme_and_port(settings):
    settings.CSRF_TRUSTED_ORIGINS = [
        "https://chat.example.org",
        "https://*.apps.example.org",
        "http://dev.example.org:3000",
    ]
    assert allowed("https://chat.example.org", host="conduit.internal")  # whatever the Host
    assert allowed("https://chat.example.org:443")
    assert not allowed("https://chat.example.org:8443")
    assert not allowed("http://chat.example.org")
    assert allowed("https://a.apps.example.org")
    assert allowed("https://b.a.apps.example.org")
    assert not allowed("https://a.apps.example.org.evil.com")
    assert not allowed("https://evilapps.example.org")
    assert not allowed("https://a.apps.example.org:8443")
    assert allowed("http://dev.example.org:3000")
    assert not allowed("http://dev.example.org")


async def _handshake(origin: bytes, host: bytes) -> bool:
    communicator = WebsocketCommunicator(application, "/ws/assistant/", headers=[(b"host", host), (b"origin", origin)])
    connected, _ = await communicator.connect(5)  # no credentials: accepted, then closed with 4401
    await communicator.disconnect()
    return connected


@pytest.mark.django_db(transaction=True)
async def test_the_asgi_application_checks_the_origin_before_anything_else():
    assert await _handshake(b"http://localhost:8000", b"localhost:8000")
    assert not await _handshake(b"http://localhost:8001", b"localhost:8000")
    assert not await _handshake(b"https://evil.example", b"localhost:8000")
