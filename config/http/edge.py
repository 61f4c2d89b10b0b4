"""The server's edge: what a connection may do before Django sees a request.

daphne serves HTTP with Twisted's `HTTPChannel`, which (as configured by daphne) buffers any body of
100 KB or more to a temporary file before the application sees the request, has one idle timeout
(60 s) that every byte received starts again, and no limit on connections. So one client could fill
the disk with a body it declared 10 GB long, or hold the process's file descriptors with thousands of
connections each trickling an unfinished header. config/daphne_server.py installs this layer in its
place:

- **Body limits.** A declared `Content-Length` above the path's limit (config/http/edge_paths.py) is
  answered 413 as soon as the headers are in, before a byte of the body is read or buffered; a
  chunked body is counted as it arrives and cut with a 413 at the limit. The answer is JSON in the
  API's error shape (or the path's own: the OpenAI-compatible API's); the connection is then closed
  (after reading and dropping what the client was still sending for a moment, so that it gets to
  read the answer).
- **Timeouts** (settings `HTTP_HEADER_TIMEOUT`, `HTTP_BODY_TIMEOUT`, `HTTP_KEEPALIVE_TIMEOUT`): a
  request's headers must be complete within the header timeout of its first byte (of the connection
  for its first request), however slowly they trickle in; a body must not stall for longer than the
  body timeout; a kept-alive connection idle for longer than the keep-alive timeout is closed. While
  the application handles a request, and once a connection is a websocket, none of them applies
  (streams and websockets stay open as long as they need; websockets have their own pings).
- **Connections per client** (`HTTP_MAX_CONNECTIONS_PER_CLIENT`): without proxies in front
  (`NUM_PROXIES` = 0) a client is the peer address, and each of its open connections (websockets
  included) counts until it closes; the one past the cap gets a 503 and is closed before anything
  is read. Behind proxies the peer is the proxy, so a client is the address `NUM_PROXIES` from the
  right of `X-Forwarded-For` (as for the throttles), and what counts is each request in progress and
  each open websocket: the one past the cap is answered 503.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from urllib.parse import unquote

from daphne.http_protocol import HTTPFactory, WebRequest
from django.conf import settings
from twisted.internet.protocol import Protocol
from twisted.protocols.policies import ProtocolWrapper, WrappingFactory
from twisted.web import http

from config.http.edge_paths import body_limit, edge_error_body
from config.http.request_ids import request_id_for

logger = logging.getLogger(__name__)

# After refusing a request, what the client still sends is read and dropped for this long (or this
# much) before the connection is closed: closing with unread data makes the kernel reset the
# connection, and a client busy sending would never read the answer.
LINGER_SECONDS = 2.0
LINGER_BYTES = 16 * 2**20


@dataclass(frozen=True)
class EdgeLimits:
    header_timeout: float
    body_timeout: float
    keepalive_timeout: float
    max_connections_per_client: int  # 0: no cap
    num_proxies: int

    @classmethod
    def from_settings(cls) -> EdgeLimits:
        return cls(
            header_timeout=settings.HTTP_HEADER_TIMEOUT,
            body_timeout=settings.HTTP_BODY_TIMEOUT,
            keepalive_timeout=settings.HTTP_KEEPALIVE_TIMEOUT,
            max_connections_per_client=settings.HTTP_MAX_CONNECTIONS_PER_CLIENT,
            num_proxies=settings.REST_FRAMEWORK["NUM_PROXIES"],
        )


def edge_answer(
    status: int, reason: str, message: str, code: str, *, path: str | None = None, request_id: str = ""
) -> bytes:
    """A complete HTTP response closing the connection, its body in the error shape of `path`."""
    request_id = request_id_for(request_id)
    body = json.dumps(edge_error_body(path, status, message, code, request_id=request_id)).encode()
    head = (
        f"HTTP/1.1 {status} {reason}\r\nContent-Type: application/json\r\nContent-Length: {len(body)}\r\n"
        f"Connection: close\r\nX-Request-ID: {request_id}\r\n\r\n"
    )
    return head.encode() + body


def _too_large(limit: int) -> tuple[str, str]:
    return f"The request body is larger than the limit of {limit} bytes ({limit / 2**20:.1f} MiB).", "too_large"


def _too_many_connections(limit: int) -> tuple[str, str]:
    return f"Too many connections from your address at once (at most {limit}).", "too_many_connections"


# --- Connections per client ---------------------------------------------------------------------


class ClientCounts:
    """How many places each client address holds (open connections, or requests behind proxies)."""

    def __init__(self, limit: int):
        self.limit = limit
        self.held: dict[str, int] = {}
        self._warned: set[str] = set()

    def take(self, client: str) -> bool:
        held = self.held.get(client, 0)
        if self.limit and held >= self.limit:
            if client not in self._warned:  # once until all its connections are closed: no log flood
                self._warned.add(client)
                logger.warning(
                    "Refusing connections from %s: %d open already (HTTP_MAX_CONNECTIONS_PER_CLIENT)", client, held
                )
            return False
        self.held[client] = held + 1
        return True

    def give_back(self, client: str) -> None:
        held = self.held[client] - 1
        if held:
            self.held[client] = held
        else:
            del self.held[client]
            self._warned.discard(client)


class CountedConnection(ProtocolWrapper):
    """A TCP connection between the socket and daphne's protocol (HTTP, then perhaps a websocket:
    daphne hands a wrapper's place over to the websocket protocol), holding at most one place of
    one client until it closes."""

    client: str | None = None

    def hold(self, client: str) -> bool:
        self.release()
        if not self.factory.counts.take(client):
            return False
        self.client = client
        return True

    def release(self) -> None:
        if self.client is not None:
            self.factory.counts.give_back(self.client)
            self.client = None

    def connectionLost(self, reason) -> None:
        self.release()
        super().connectionLost(reason)


class _Refused(Protocol):
    def __init__(self, answer: bytes):
        self.answer = answer

    def connectionMade(self) -> None:
        self.transport.write(self.answer)
        self.transport.loseConnection()


class ClientLimitFactory(WrappingFactory):
    protocol = CountedConnection

    def __init__(self, wrapped_factory, *, limits: EdgeLimits):
        super().__init__(wrapped_factory)
        self.limits = limits
        self.counts = ClientCounts(limits.max_connections_per_client)

    def buildProtocol(self, addr):
        if self.limits.num_proxies:  # the peer is a proxy: the channel counts requests by client
            return super().buildProtocol(addr)
        client = getattr(addr, "host", "local")
        if not self.counts.take(client):
            return _Refused(edge_answer(503, "Service Unavailable", *_too_many_connections(self.counts.limit)))
        connection = super().buildProtocol(addr)
        connection.client = client
        return connection

    # The wrapping factory's table of its connections: not needed, the counts are enough.
    def registerProtocol(self, p) -> None:
        pass

    def unregisterProtocol(self, p) -> None:
        pass


def client_behind_proxies(forwarded_for: list[bytes] | None, num_proxies: int, peer: str) -> str:
    """The client's address as the throttles see it (DRF's rule): the address `num_proxies` from the
    right of X-Forwarded-For, the part the proxies wrote (the left part is whatever the client sent)."""
    if not forwarded_for:
        return peer
    addresses = b",".join(forwarded_for).decode("latin-1").split(",")
    return addresses[-min(num_proxies, len(addresses))].strip() or peer


# --- The HTTP channel ---------------------------------------------------------------------------

HEADERS, BODY, HANDLING, IDLE, REFUSED = "headers", "body", "handling", "idle", "refused"


class EdgeHTTPChannel(http.HTTPChannel):
    """Twisted's HTTP/1.1 channel with the limits above. Twisted's own idle timeout is off (the
    factory's `timeOut` is None); one timer of ours follows the phase of the connection."""

    abortTimeout = 5  # seconds a closed connection may take to go before it is aborted (Twisted: 15)

    limits: EdgeLimits
    _phase = HEADERS
    _timer = None
    _linger_call = None
    _lingered = 0
    _request_started = False  # a byte of the current request has arrived
    _body_limit: int | None = None
    _body_received = 0

    def connectionMade(self) -> None:
        super().connectionMade()
        self._wait(HEADERS, self.limits.header_timeout)  # a new connection has that long to send its request

    def dataReceived(self, data: bytes) -> None:
        if self._phase == REFUSED:
            self._linger(data)
            return
        if self._phase == IDLE:
            self._wait(HEADERS, self.limits.header_timeout)
        elif self._phase == BODY and self._timer is not None:
            self._timer.reset(self.limits.body_timeout)
        self._request_started = True
        super().dataReceived(data)

    def rawDataReceived(self, data: bytes) -> None:
        if self._phase == REFUSED:  # the rest of a buffer that held the end of refused headers
            self._linger(data)
            return
        super().rawDataReceived(data)

    def allHeadersReceived(self) -> None:
        request = self.requests[-1]
        if self.limits.num_proxies:
            client = client_behind_proxies(
                request.requestHeaders.getRawHeaders(b"x-forwarded-for"), self.limits.num_proxies,
                self._peer_host(),
            )  # fmt: skip
            if not self.transport.hold(client):
                too_many = _too_many_connections(self.limits.max_connections_per_client)
                self._refuse(request, 503, "Service Unavailable", *too_many)
                return
        self._body_limit = body_limit(self._request_path())
        self._body_received = 0
        if self.length is not None and self._body_limit is not None and self.length > self._body_limit:
            # Before super(): it opens the body's buffer (a temporary file from 100 KB on).
            self._refuse(request, 413, "Content Too Large", *_too_large(self._body_limit))
            return
        super().allHeadersReceived()
        if self.length != 0:
            self._wait(BODY, self.limits.body_timeout)

    def body_received(self, size: int) -> bool:
        """Count `size` more bytes of the body (decoded, without chunk framing); False when they must
        be dropped: past the path's limit (refused here) or after a refusal."""
        if self._phase == REFUSED:
            return False
        self._body_received += size
        if self._body_limit is not None and self._body_received > self._body_limit:
            self._refuse(self.requests[-1], 413, "Content Too Large", *_too_large(self._body_limit))
            return False
        return True

    def allContentReceived(self) -> None:
        if self._phase == REFUSED:  # a chunked body cut at its limit can still end in the same buffer
            return
        self._wait(HANDLING, None)
        super().allContentReceived()

    def requestDone(self, request) -> None:
        if self.limits.num_proxies:
            self.transport.release()  # the request's place; a websocket never gets here and keeps it
        self._request_started = False
        # Before super(): it may go on with a request the client pipelined behind this one.
        self._wait(IDLE, self.limits.keepalive_timeout)
        super().requestDone(request)

    def connectionLost(self, reason) -> None:
        self._wait(self._phase, None)
        if self._linger_call is not None and self._linger_call.active():
            self._linger_call.cancel()
        super().connectionLost(reason)

    def _peer_host(self) -> str:
        return getattr(self.transport.getPeer(), "host", "local")

    def _request_path(self) -> str | None:
        """The decoded path of the request under way, once its request line is in."""
        target = getattr(self, "_path", None)  # Twisted's, from the request line until the body is in
        return None if target is None else unquote(target.split(b"?", 1)[0].decode("latin-1"))

    # --- timers and refusals

    def _wait(self, phase: str, seconds: float | None) -> None:
        """Enter `phase`, closing the connection if it is still in it after `seconds` (None or 0: never)."""
        self._phase = phase
        if self._timer is not None and self._timer.active():
            self._timer.cancel()
        self._timer = self.callLater(seconds, self._timed_out) if seconds else None

    def _timed_out(self) -> None:
        self._timer = None
        if self._phase == BODY or (self._phase == HEADERS and self._request_started):
            what = "body" if self._phase == BODY else "headers"
            logger.debug("Closing a connection from %s: its %s timed out", self._peer_host(), what)
            message = f"The request's {what} took too long to arrive."
            self.transport.write(edge_answer(408, "Request Timeout", message, "timeout", path=self._request_path()))
        self.timeoutConnection()  # Twisted's: close, and abort if that hasn't worked after abortTimeout

    def _refuse(self, request, status: int, reason: str, message: str, code: str) -> None:
        """Answer `request` with an error and close the connection, without reading its body."""
        self._wait(REFUSED, None)
        logger.info("Refused %s %s from %s: %s", self._command.decode("latin-1"), self._path[:200].decode("latin-1"),
                    self._peer_host(), message)  # fmt: skip
        request_id = (request.requestHeaders.getRawHeaders(b"x-request-id") or [b""])[0].decode("latin-1")
        answer = edge_answer(status, reason, message, code, path=self._request_path(), request_id=request_id)
        self.transport.write(answer)
        self.setRawMode()  # whatever else the client sent goes to _linger, not to the request parser
        self._networkProducer.unregisterProducer()
        close_writing = getattr(self.transport, "loseWriteConnection", None)
        if close_writing is None:
            self.transport.loseConnection()
            return
        close_writing()  # the client reads the answer and an end; what it still sends is dropped
        self._linger_call = self.callLater(LINGER_SECONDS, self.transport.loseConnection)

    def _linger(self, data: bytes) -> None:
        self._lingered += len(data)
        if self._lingered > LINGER_BYTES:
            self.transport.loseConnection()


class EdgeWebRequest(WebRequest):
    """daphne's request, its body counted by the channel as it arrives, and not parsed by Twisted:
    Twisted reads a whole form or multipart body into memory to fill `request.args` (which daphne
    never reads), and answers a bare 400 of its own to a multipart body it can't parse."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._parsePOSTFormSubmission = False

    def handleContentChunk(self, data: bytes) -> None:
        if self.channel.body_received(len(data)):
            super().handleContentChunk(data)


def _edge_channel(factory: EdgeHTTPFactory) -> http._GenericHTTPChannelProtocol:
    channel = EdgeHTTPChannel()
    channel.limits = factory.limits
    return http._GenericHTTPChannelProtocol(channel)


class EdgeHTTPFactory(HTTPFactory):
    protocol = _edge_channel

    def __init__(self, server, *, limits: EdgeLimits):
        super().__init__(server)
        self.limits = limits
        self.timeOut = None  # Twisted's idle timeout, which every byte restarts: the channel's own instead

    def buildProtocol(self, addr):
        protocol = super().buildProtocol(addr)
        protocol.requestFactory = EdgeWebRequest
        return protocol


def edge_factory(server, limits: EdgeLimits) -> ClientLimitFactory:
    """The factory daphne's server listens with: HTTP (and websockets) behind the per-client cap."""
    return ClientLimitFactory(EdgeHTTPFactory(server, limits=limits), limits=limits)
