"""The egress policy: what a user's URL may reach, at save time (check_url) and at connect time
(guarded_http_client), against real sockets on 127.0.0.1."""

from __future__ import annotations

from http.server import BaseHTTPRequestHandler
from urllib.parse import parse_qs, urlsplit

import httpx2
import pytest

from config.egress import EgressRefused, check_url, guarded_http_client
from config.testing.listener import recording_listener
from config.testing.servers import serve_http

# --- save time --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("http://127.0.0.1/", "loopback"),
        ("http://127.8.9.10:8000/v1", "loopback"),
        ("http://2130706433/", "loopback"),  # decimal form of 127.0.0.1
        ("http://127.1/", "loopback"),  # short form
        ("http://0x7f.0.0.1/", "loopback"),  # hexadecimal
        ("http://localhost:8000/", "loopback"),
        ("http://api.localhost/", "loopback name"),
        ("http://LocalHost./", "loopback"),
        ("http://[::1]:8080/", "loopback"),
        ("http://10.0.0.5/", "private"),
        ("http://172.16.3.4/", "private"),
        ("http://192.168.1.1/", "private"),
        ("http://169.254.10.20/", "link-local"),
        ("http://169.254.169.254/latest/meta-data/", "cloud metadata"),
        ("http://100.100.100.200/", "cloud metadata"),
        ("http://[fd00:ec2::254]/", "cloud metadata"),
        ("http://100.64.0.1/", "carrier-grade NAT"),
        ("http://0.0.0.0:8000/", "unspecified"),
        ("http://0/", "unspecified"),
        ("http://[::]/", "unspecified"),
        ("http://224.0.0.1/", "multicast"),
        ("http://[ff02::1]/", "multicast"),
        ("http://255.255.255.255/", "broadcast"),
        ("http://240.0.0.1/", "reserved"),
        ("http://[fc00::1]/", "private"),
        ("http://[fe80::1]/", "link-local"),
        ("http://[::ffff:127.0.0.1]/", "IPv4-mapped form of 127.0.0.1"),
        ("http://[::ffff:a9fe:a9fe]/", "IPv4-mapped form of 169.254.169.254"),
        ("http://[::127.0.0.1]/", "IPv4-compatible form of 127.0.0.1"),
        ("http://[2002:7f00:1::]/", "6to4 form of 127.0.0.1"),
        ("http://[64:ff9b::a9fe:a9fe]/", "NAT64 form of 169.254.169.254"),
        ("http://[64:ff9b:1::1]/", "NAT64"),
        ("http://[2001:db8::1]/", "documentation"),
    ],
)
def test_check_url_refuses_every_non_public_address(url, reason):
    with pytest.raises(EgressRefused) as refused:
        check_url(url)
    assert reason in str(refused.value)


@pytest.mark.parametrize(
    "url",
    [
        "https://8.8.8.8/",
        "http://[2606:4700:4700::1111]:8080/mcp",
        "http://[::ffff:8.8.8.8]/",  # a mapped form of a public address is that public address
        "https://conduit-egress-test.invalid/v1",  # doesn't resolve now: the connection decides
    ],
)
def test_check_url_accepts_public_addresses_and_names_that_do_not_resolve_yet(url):
    assert check_url(url) is None


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("ftp://example.com/", "only http and https"),
        ("file:///etc/passwd", "only http and https"),
        ("http:///path", "names no host"),
        ("http://[::1/", "malformed"),
        ("http://0177.0.0.1/", "malformed"),  # httpx, which the SDKs connect with, refuses octal
    ],
)
def test_check_url_refuses_other_schemes_and_urls_without_a_host(url, reason):
    with pytest.raises(EgressRefused, match=reason):
        check_url(url)


def test_the_message_names_the_host_but_no_credentials_or_query():
    with pytest.raises(EgressRefused) as refused:
        check_url("http://alice:s3cret-pw@127.0.0.1:8000/path?token=t0ken")
    message = str(refused.value)
    assert "127.0.0.1" in message and "loopback" in message
    assert "s3cret" not in message and "t0ken" not in message and "alice" not in message


def test_outbound_allowed_hosts_lets_a_listed_host_through_case_insensitively(settings):
    settings.OUTBOUND_ALLOWED_HOSTS = ["LocalHost", "10.0.0.5:8443"]
    check_url("http://localhost:8000/")
    check_url("http://LOCALHOST/")
    check_url("https://10.0.0.5:8443/mcp")
    # Only the host as written: 127.0.0.1 is still refused, and the listed port only.
    with pytest.raises(EgressRefused, match="loopback"):
        check_url("http://127.0.0.1:8000/")
    with pytest.raises(EgressRefused, match="private"):
        check_url("https://10.0.0.5:8444/mcp")


# --- connect time -----------------------------------------------------------------------------


class _Upstream(BaseHTTPRequestHandler):
    """Answers 200 with the Host header it got; `?to=URL` answers a redirect there."""

    def log_message(self, format, *args):  # noqa: A002 - quiet test output
        pass

    def do_GET(self):  # noqa: N802
        self.server.hits.append(self.headers.get("Host"))
        to = parse_qs(urlsplit(self.path).query).get("to")
        self.send_response(302 if to else 200)
        if to:
            self.send_header("Location", to[0])
        body = (self.headers.get("Host") or "").encode()
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


@pytest.fixture
def upstream():
    with serve_http(_Upstream, hits=[]) as server:
        yield server


@pytest.fixture
def listener():
    with recording_listener() as listener:
        yield listener


def static_resolver(answers: dict[str, list[str]]):
    async def resolve(host: str, port: int) -> list[str]:
        return answers[host]

    return resolve


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost", "2130706433", "127.1", "[::ffff:127.0.0.1]"])
async def test_the_guarded_client_never_connects_to_a_forbidden_address(listener, host):
    async with guarded_http_client() as client:
        with pytest.raises(EgressRefused) as refused:
            await client.get(f"http://{host}:{listener.port}/")
    assert "loopback" in str(refused.value)
    assert listener.accepted == 0


async def test_an_unguarded_client_does_reach_the_listener(listener):
    # The attack above is real: without the guard the same request connects.
    async with httpx2.AsyncClient() as client:
        with pytest.raises(httpx2.HTTPError):
            await client.get(f"http://127.0.0.1:{listener.port}/")
    assert listener.accepted == 1


async def test_an_allowed_host_is_reached(settings, upstream):
    port = upstream.server_address[1]
    settings.OUTBOUND_ALLOWED_HOSTS = [f"127.0.0.1:{port}"]
    async with guarded_http_client() as client:
        response = await client.get(f"{upstream.base_url}/")
    assert response.status_code == 200 and upstream.hits == [f"127.0.0.1:{port}"]


async def test_it_connects_to_the_address_it_checked_with_the_name_in_the_request(settings, upstream):
    # The name resolves only through the client's resolver, never through the system's: the
    # connection went to the address that resolver gave (no second lookup), the Host is the name.
    port = upstream.server_address[1]
    settings.OUTBOUND_ALLOWED_HOSTS = ["upstream.egress.test"]
    resolver = static_resolver({"upstream.egress.test": ["127.0.0.1"]})
    async with guarded_http_client(resolve=resolver) as client:
        response = await client.get(f"http://upstream.egress.test:{port}/")
    assert response.status_code == 200 and response.text == f"upstream.egress.test:{port}"


async def test_a_name_that_passed_at_save_but_resolves_to_loopback_at_connect_is_refused(listener):
    # DNS rebinding: at save time the name doesn't resolve (or resolves to a public address), by the
    # time the server connects it answers 127.0.0.1.
    url = f"http://rebind.egress.test:{listener.port}/"
    check_url(url)
    resolver = static_resolver({"rebind.egress.test": ["127.0.0.1"]})
    async with guarded_http_client(resolve=resolver) as client:
        with pytest.raises(EgressRefused, match="rebind.egress.test: it resolves to 127.0.0.1, a loopback address"):
            await client.get(url)
    assert listener.accepted == 0


async def test_a_name_with_one_forbidden_address_among_public_ones_is_refused(listener):
    resolver = static_resolver({"mixed.egress.test": ["93.184.215.14", "127.0.0.1"]})
    async with guarded_http_client(resolve=resolver) as client:
        with pytest.raises(EgressRefused, match="resolves to 127.0.0.1"):
            await client.get(f"http://mixed.egress.test:{listener.port}/")
    assert listener.accepted == 0


async def test_an_allowed_name_is_checked_again_at_connect_once_the_setting_changed(settings, listener):
    # Saved while `localhost` was allowed; the connection obeys the setting of its own time.
    settings.OUTBOUND_ALLOWED_HOSTS = ["localhost"]
    url = f"http://localhost:{listener.port}/"
    check_url(url)
    settings.OUTBOUND_ALLOWED_HOSTS = []
    async with guarded_http_client() as client:
        with pytest.raises(EgressRefused, match="localhost"):
            await client.get(url)
    assert listener.accepted == 0


@pytest.mark.parametrize("target_host", ["127.0.0.1", "localhost"])
async def test_a_redirect_from_an_allowed_server_to_a_forbidden_address_is_refused(
    settings, upstream, listener, target_host
):
    settings.OUTBOUND_ALLOWED_HOSTS = [f"127.0.0.1:{upstream.server_address[1]}"]
    target = f"http://{target_host}:{listener.port}/"
    async with guarded_http_client(follow_redirects=True) as client:
        with pytest.raises(EgressRefused, match="loopback"):
            await client.get(f"{upstream.base_url}/?to={target}")
    assert len(upstream.hits) == 1 and listener.accepted == 0


async def test_an_unguarded_client_follows_that_redirect(upstream, listener):
    async with httpx2.AsyncClient(follow_redirects=True) as client:
        with pytest.raises(httpx2.HTTPError):
            await client.get(f"{upstream.base_url}/?to=http://127.0.0.1:{listener.port}/")
    assert listener.accepted == 1


async def test_proxy_variables_of_the_environment_do_not_route_around_the_check(
    settings, monkeypatch, upstream, listener
):
    # A proxy would connect to the destination for us, unchecked: the guarded client uses none.
    for name in ("HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy"):
        monkeypatch.setenv(name, f"http://127.0.0.1:{listener.port}")
    port = upstream.server_address[1]
    settings.OUTBOUND_ALLOWED_HOSTS = ["upstream.egress.test"]
    resolver = static_resolver({"upstream.egress.test": ["127.0.0.1"]})
    async with guarded_http_client(resolve=resolver) as client:
        response = await client.get(f"http://upstream.egress.test:{port}/")
    assert response.status_code == 200 and listener.accepted == 0


def test_the_guarded_client_takes_no_transport_or_proxy():
    for option in ("transport", "mounts", "proxy"):
        with pytest.raises(TypeError, match="bypass the egress policy"):
            guarded_http_client(**{option: None})
