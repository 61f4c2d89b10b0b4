"""The egress policy for URLs ordinary users choose (an LLM config's base URL, an MCP server's url).

Staff decide where the server connects; a user's URL may reach public addresses only, unless
`OUTBOUND_ALLOWED_HOSTS` lists its host. Without this a user could make the server connect to any
host and port it can reach (loopback services, the private network, cloud metadata) and tell open
ports from closed ones by the error.

Checked twice:
- `check_url` when the URL is saved, for a clear 400;
- `guarded_http_client` on every connection, because a name may resolve elsewhere by then (DNS
  rebinding) and a redirect leads to another host. Its connections resolve the name once, check every
  address, and connect to a checked address: there is no second lookup to rebind. TLS still uses the
  host name (SNI and certificate check), since only the TCP connect is redirected to the address.
"""

from __future__ import annotations

import ipaddress
import socket
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable, Generator, Iterable
from contextlib import contextmanager
from urllib.parse import urlsplit

import anyio
import httpcore2
import httpx2
from django.conf import settings

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
# (host, port) -> the addresses to connect to, e.g. ["93.184.215.14", "2606:2800:21f:cb07:6820:80da:af6b:8b2c"]
Resolver = Callable[[str, int], Awaitable[list[str]]]


class EgressRefused(Exception):
    """A destination the egress policy refuses; `str()` names the host and why, nothing else of the URL."""

    def __init__(self, host: str, reason: str):
        self.host = host
        self.reason = reason
        super().__init__(f"The server may not connect to {host}: {reason}.")


# --- addresses ----------------------------------------------------------------------------------

_net = ipaddress.ip_network
_V4_RULES = [
    (_net("0.0.0.0/8"), "an unspecified address"),
    (_net("10.0.0.0/8"), "a private address"),
    (_net("100.100.100.200/32"), "a cloud metadata address"),
    (_net("100.64.0.0/10"), "a carrier-grade NAT address"),
    (_net("127.0.0.0/8"), "a loopback address"),
    (_net("169.254.169.254/32"), "a cloud metadata address"),
    (_net("169.254.0.0/16"), "a link-local address"),
    (_net("172.16.0.0/12"), "a private address"),
    (_net("192.0.0.0/24"), "a reserved address"),
    (_net("192.0.2.0/24"), "a documentation address"),
    (_net("192.88.99.0/24"), "a reserved address"),
    (_net("192.168.0.0/16"), "a private address"),
    (_net("198.18.0.0/15"), "a reserved address"),
    (_net("198.51.100.0/24"), "a documentation address"),
    (_net("203.0.113.0/24"), "a documentation address"),
    (_net("224.0.0.0/4"), "a multicast address"),
    (_net("255.255.255.255/32"), "the broadcast address"),
    (_net("240.0.0.0/4"), "a reserved address"),
]
_V6_RULES = [
    (_net("::/128"), "an unspecified address"),
    (_net("::1/128"), "a loopback address"),
    (_net("64:ff9b:1::/48"), "a local NAT64 address"),
    (_net("100::/64"), "a reserved address"),
    (_net("2001::/32"), "a Teredo tunnel address"),
    (_net("2001:db8::/32"), "a documentation address"),
    (_net("fd00:ec2::254/128"), "a cloud metadata address"),
    (_net("fc00::/7"), "a private (unique local) address"),
    (_net("fe80::/10"), "a link-local address"),
    (_net("fec0::/10"), "a site-local address"),
    (_net("ff00::/8"), "a multicast address"),
]
_IPV4_COMPATIBLE = _net("::/96")
_NAT64 = _net("64:ff9b::/96")


def address_refusal(address: IPAddress) -> str | None:
    """Why the policy refuses `address` (e.g. "a loopback address"), or None for a public one."""
    if isinstance(address, ipaddress.IPv6Address):
        address = ipaddress.IPv6Address(address.compressed.split("%")[0])  # a zone id changes nothing
        embedded, form = _embedded_ipv4(address)
        if embedded is not None:
            reason = address_refusal(embedded)
            return f"{form} of {embedded}, {reason}" if reason else None
        rules = _V6_RULES
    else:
        rules = _V4_RULES
    for network, reason in rules:
        if address in network:
            return reason
    # Whatever the tables above miss (new IANA special-purpose blocks) is refused too.
    return None if address.is_global and not address.is_multicast else "not a public address"


def _embedded_ipv4(address: ipaddress.IPv6Address) -> tuple[ipaddress.IPv4Address | None, str]:
    """The IPv4 address an IPv6 form carries, which the network may deliver to that IPv4 host."""
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped, "an IPv4-mapped form"
    if address.sixtofour is not None:
        return address.sixtofour, "a 6to4 form"
    if address in _NAT64:
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF), "a NAT64 form"
    if address in _IPV4_COMPATIBLE and int(address) > 1:
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF), "an IPv4-compatible form"
    return None, ""


def ip_literal(host: str) -> IPAddress | None:
    """`host` as an address if it is one, in any form the resolver would take: `127.1`, `2130706433`,
    `0x7f.0.0.1` and `0177.0.0.1` are all 127.0.0.1 to `inet_aton`."""
    host = host.strip("[]")
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        pass
    try:
        return ipaddress.IPv4Address(socket.inet_aton(host))
    except OSError:
        return None


# --- hosts ----------------------------------------------------------------------------------------


def _normal_host(host: str) -> str:
    return host.strip().strip("[]").rstrip(".").lower()


def _allowed_entries() -> set[tuple[str, int | None]]:
    entries = set()
    for raw in settings.OUTBOUND_ALLOWED_HOSTS:
        parts = urlsplit(f"//{raw.strip()}")
        try:
            port = parts.port
        except ValueError:
            continue  # not host[:port]: matches nothing
        if parts.hostname:
            entries.add((_normal_host(parts.hostname), port))
    return entries


def host_is_allowed(host: str, port: int) -> bool:
    """Whether `OUTBOUND_ALLOWED_HOSTS` lists `host` (as written in the URL, any case) or `host:port`."""
    entries = _allowed_entries()
    host = _normal_host(host)
    return (host, None) in entries or (host, port) in entries


def _check_addresses(host: str, addresses: Iterable[str]) -> None:
    name = _normal_host(host)
    if name == "localhost" or name.endswith(".localhost"):
        # Loopback by definition (RFC 6761), whatever a resolver says of `localhost.` today.
        raise EgressRefused(host, "it is a loopback name")
    for text in addresses:
        address = ip_literal(text)
        reason = "an unreadable address" if address is None else address_refusal(address)
        if reason:
            if address is not None and ip_literal(host) == address:
                raise EgressRefused(host, f"it is {reason}")
            raise EgressRefused(host, f"it resolves to {text}, {reason}")


def check_addresses(host: str, port: int, addresses: Iterable[str]) -> None:
    """The connect-time check for clients other than `guarded_http_client` (connections/http.py, on
    requests): `host` resolved to `addresses`, every one must pass unless the host is allowed."""
    if not host_is_allowed(host, port):
        _check_addresses(host, addresses)


def check_url(url: str) -> None:
    """The save-time check of a URL a user chose; raises EgressRefused.

    An http(s) URL with a host; an address literal, and every address the name resolves to now, must be
    public, unless the host is allowed. A name that doesn't resolve now is accepted: the connection
    checks again (`guarded_http_client`). The URL is read by httpx's parser, the one the SDKs connect
    with, so the host checked is the host they would reach."""
    try:
        parsed = httpx2.URL(url)
        host = parsed.raw_host.decode("ascii")
    except (httpx2.InvalidURL, TypeError, UnicodeError):
        raise EgressRefused("this URL", "it is malformed") from None
    if parsed.scheme not in {"http", "https"}:
        raise EgressRefused(host or "this URL", "only http and https URLs are allowed")
    if not host:
        raise EgressRefused("this URL", "it names no host")
    port = parsed.port or (443 if parsed.scheme == "https" else 80)
    if host_is_allowed(host, port):
        return
    literal = ip_literal(host)
    if literal is not None:
        _check_addresses(host, [str(literal)])
        return
    try:
        addresses = [info[4][0] for info in socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)]
    except (socket.gaierror, UnicodeError):
        addresses = []
    _check_addresses(host, addresses)


# --- connections ------------------------------------------------------------------------------


async def system_resolver(host: str, port: int) -> list[str]:
    """The system's resolver (getaddrinfo), without blocking the event loop."""
    infos = await anyio.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return [info[4][0] for info in infos]


class _GuardedBackend(httpcore2.AsyncNetworkBackend):
    """httpcore's network backend, resolving and checking before every TCP connect."""

    def __init__(self, resolve: Resolver):
        self._resolve = resolve
        self._backend = httpcore2.AnyIOBackend()

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[httpcore2.SOCKET_OPTION] | None = None,
    ) -> httpcore2.AsyncNetworkStream:
        try:
            with anyio.fail_after(timeout):
                addresses = list(dict.fromkeys(await self._resolve(host, port)))
        except TimeoutError:
            raise httpcore2.ConnectTimeout(f"resolving {host} timed out") from None
        except (OSError, UnicodeError) as exc:
            raise httpcore2.ConnectError(f"{host} could not be resolved: {exc}") from None
        if not addresses:
            raise httpcore2.ConnectError(f"{host} could not be resolved")
        if not host_is_allowed(host, port):
            _check_addresses(host, addresses)  # every address: a caller can't pick which one we use
        error: Exception | None = None
        for address in addresses:
            try:
                return await self._backend.connect_tcp(
                    address, port, timeout=timeout, local_address=local_address, socket_options=socket_options
                )
            except (httpcore2.ConnectError, httpcore2.ConnectTimeout) as exc:
                error = exc
        assert error is not None
        raise error

    async def connect_unix_socket(self, path: str, timeout=None, socket_options=None) -> httpcore2.AsyncNetworkStream:
        raise EgressRefused(path, "Unix sockets are not allowed")

    async def sleep(self, seconds: float) -> None:
        await self._backend.sleep(seconds)


# httpcore's exceptions as httpx's, as httpx's own transport maps them, so callers (the SDKs)
# see the exceptions they expect. The most specific match wins.
_HTTPCORE_TO_HTTPX = [
    (getattr(httpcore2, name), getattr(httpx2, name))
    for name in (
        "ConnectTimeout", "ReadTimeout", "WriteTimeout", "PoolTimeout", "TimeoutException",
        "ConnectError", "ReadError", "WriteError", "NetworkError", "ProxyError", "UnsupportedProtocol",
        "LocalProtocolError", "RemoteProtocolError", "ProtocolError",
    )
]  # fmt: skip


@contextmanager
def _httpx_errors() -> Generator[None]:
    try:
        yield
    except Exception as exc:
        for core_type, httpx_type in _HTTPCORE_TO_HTTPX:
            if isinstance(exc, core_type):
                raise httpx_type(str(exc)) from exc
        raise


class _ResponseStream(httpx2.AsyncByteStream):
    def __init__(self, stream: AsyncIterator[bytes]):
        self._stream = stream

    async def __aiter__(self) -> AsyncIterator[bytes]:
        with _httpx_errors():
            async for part in self._stream:
                yield part

    async def aclose(self) -> None:
        if hasattr(self._stream, "aclose"):
            await self._stream.aclose()


class GuardedTransport(httpx2.AsyncBaseTransport):
    """httpx's transport over an httpcore pool whose every connection passes the egress policy.

    (httpx's own AsyncHTTPTransport takes no network backend; httpcore's pool does, publicly.)
    No proxy: a proxy would connect to the destination on our behalf, unchecked."""

    def __init__(
        self,
        *,
        verify: ssl.SSLContext | str | bool = True,
        cert: str | tuple[str, ...] | None = None,
        trust_env: bool = True,
        http1: bool = True,
        http2: bool = False,
        limits: httpx2.Limits = httpx2.Limits(max_connections=100, max_keepalive_connections=20),
        socket_options: Iterable[httpcore2.SOCKET_OPTION] | None = None,
        resolve: Resolver = system_resolver,
    ):
        self._pool = httpcore2.AsyncConnectionPool(
            ssl_context=httpx2.create_ssl_context(verify=verify, cert=cert, trust_env=trust_env),
            max_connections=limits.max_connections,
            max_keepalive_connections=limits.max_keepalive_connections,
            keepalive_expiry=limits.keepalive_expiry,
            http1=http1,
            http2=http2,
            socket_options=socket_options,
            network_backend=_GuardedBackend(resolve),
        )

    async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
        core_request = httpcore2.Request(
            method=request.method,
            url=httpcore2.URL(
                scheme=request.url.raw_scheme,
                host=request.url.raw_host,
                port=request.url.port,
                target=request.url.raw_path,
            ),
            headers=request.headers.raw,
            content=request.stream,
            extensions=request.extensions,
        )
        with _httpx_errors():
            response = await self._pool.handle_async_request(core_request)
        return httpx2.Response(
            status_code=response.status,
            headers=response.headers,
            stream=_ResponseStream(response.stream),
            extensions=response.extensions,
        )

    async def aclose(self) -> None:
        await self._pool.aclose()


_TRANSPORT_OPTIONS = ("verify", "cert", "trust_env", "http1", "http2", "limits")


def guarded_http_client(*, resolve: Resolver = system_resolver, **kwargs) -> httpx2.AsyncClient:
    """An `httpx2.AsyncClient` (the class the anthropic and mcp SDKs use) whose every connection,
    redirects included, passes the egress policy; a refused one raises EgressRefused from the request.

    `kwargs` are AsyncClient's (headers, timeout, auth, follow_redirects …); `verify`, `cert`,
    `trust_env`, `http1`, `http2`, `limits` and `socket_options` configure the transport. `resolve`
    replaces the system resolver (a deployment's own resolver, or a test's)."""
    for option in ("transport", "mounts", "proxy"):
        if option in kwargs:
            raise TypeError(f"guarded_http_client() takes no {option!r}: it would bypass the egress policy")
    transport_options = {name: kwargs[name] for name in _TRANSPORT_OPTIONS if name in kwargs}
    transport = GuardedTransport(
        **transport_options, socket_options=kwargs.pop("socket_options", None), resolve=resolve
    )
    return httpx2.AsyncClient(transport=transport, **kwargs)


def egress_refusal(exc: BaseException | None) -> EgressRefused | None:
    """The EgressRefused behind `exc` (itself, or in its cause/context chain), if any: SDKs wrap it."""
    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:
        if isinstance(exc, EgressRefused):
            return exc
        seen.add(id(exc))
        exc = exc.__cause__ or exc.__context__
    return None
