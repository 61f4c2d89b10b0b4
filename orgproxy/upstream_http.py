"""The HTTP client the organization server calls Claire with: kept-alive HTTP/1.1 connections of
the standard library's http.client, shared by the server's threads, a connect and a read timeout on
every call, and bounded retries.

Why not urllib3, which this replaced (issue 18): a call through urllib3's PoolManager cost about
0.25 ms of CPU, the same call on a kept-alive http.client connection about 0.13 (bench/RESULTS.md);
urllib3's cost was its generality (pool keys and Retry objects built per call, its request and
response wrappers), none of which these calls use. The pool is the small part worth keeping.

Retries, up to `retries` per call:
- a connection that could not be made, for any method (nothing reached the upstream);
- a GET or HEAD whose answer did not arrive (timed out, connection dropped) or was 502/503/504;
- never a POST or DELETE once sent: a re-sent DELETE whose first attempt succeeded would turn the
  success into a 404, a re-sent POST would create twice.
No pause before the first retry, then 0.2 s, 0.4 s … at most 1 s. After the last retry the last
answer is returned, whatever its status.

A kept connection that the upstream closed while it was idle is noticed before reuse (it polls as
readable: end of file) and replaced by a new one. One closed between that check and the request
is the race every HTTP client has: a GET is retried, a POST fails.
"""

from __future__ import annotations

import http.client
import logging
import socket
import ssl
import threading
import time
from collections import deque
from typing import NamedTuple
from urllib.parse import urlsplit

from config.sockets import idle_and_quiet

logger = logging.getLogger(__name__)

RETRY_STATUSES = frozenset({502, 503, 504})
RETRYABLE_METHODS = frozenset({"GET", "HEAD"})
BACKOFF_FACTOR = 0.1
BACKOFF_MAX = 1.0


class Response(NamedTuple):
    status: int
    headers: http.client.HTTPMessage
    data: bytes


class TransportError(Exception):
    """No answer: the connection could not be made (`connecting`), or the answer did not arrive.
    `timed_out` tells a timeout from a refusal or a dropped connection."""

    def __init__(self, reason: BaseException, *, connecting: bool):
        super().__init__(f"{type(reason).__name__}: {reason}")
        self.connecting = connecting
        self.timed_out = isinstance(reason, TimeoutError)


def backoff(retry_number: int) -> float:
    """The pause before retry number 1, 2, 3…: 0, 0.2, 0.4 … at most BACKOFF_MAX."""
    return 0.0 if retry_number <= 1 else min(BACKOFF_MAX, BACKOFF_FACTOR * 2 ** (retry_number - 1))


class _Origin:
    """The idle connections to one scheme://host:port. A connection is used by one thread at a
    time: taken from the deque (atomic in CPython), given back when its answer has been read.
    At most `max_idle` are kept; the most recently used is taken first (it is the likeliest to
    still be open)."""

    def __init__(self, scheme: str, host: str, port: int | None, max_idle: int):
        self.scheme, self.host, self.port = scheme, host, port
        self.max_idle = max_idle
        self.idle: deque[http.client.HTTPConnection] = deque()
        # The default context verifies the certificate and the name.
        self.tls = ssl.create_default_context() if scheme == "https" else None

    def take(self, connect_timeout: float) -> http.client.HTTPConnection:
        while True:
            try:
                connection = self.idle.pop()
            except IndexError:
                break
            if connection.sock is not None and idle_and_quiet(connection.sock):
                return connection
            connection.close()
        if self.tls is not None:
            connection = http.client.HTTPSConnection(self.host, self.port, timeout=connect_timeout, context=self.tls)
        else:
            connection = http.client.HTTPConnection(self.host, self.port, timeout=connect_timeout)
        try:
            connection.connect()
            # A request leaves in one write, but Nagle's algorithm would hold the tail of one larger
            # than a packet until the upstream's delayed ACK (urllib3 set this too).
            connection.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        except BaseException:
            connection.close()
            raise
        return connection

    def give_back(self, connection: http.client.HTTPConnection) -> None:
        if len(self.idle) < self.max_idle:
            self.idle.append(connection)
        else:
            connection.close()

    def close(self) -> None:
        while self.idle:
            self.idle.pop().close()


class KeepAliveClient:
    """One per process and configuration: `request()` is safe to call from any thread."""

    def __init__(self, *, retries: int, max_idle_per_origin: int):
        self.retries = retries
        self.max_idle = max_idle_per_origin
        self._origins: dict[tuple[str, str, int | None], _Origin] = {}
        self._origins_lock = threading.Lock()

    def _origin(self, url: str) -> tuple[_Origin, str]:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"not an http(s) URL: {parts.scheme}://{parts.hostname}")
        key = (parts.scheme, parts.hostname, parts.port)
        origin = self._origins.get(key)
        if origin is None:
            with self._origins_lock:
                origin = self._origins.setdefault(key, _Origin(*key, self.max_idle))
        target = parts.path or "/"
        if parts.query:
            target = f"{target}?{parts.query}"
        return origin, target

    def request(
        self,
        method: str,
        url: str,
        *,
        headers: dict[str, str],
        body: bytes | None = None,
        connect_timeout: float,
        read_timeout: float,
    ) -> Response:
        """Send one request (retried as the module says); the answer, or TransportError.

        ValueError: a URL or header value http.client refuses (e.g. a line break in it)."""
        origin, target = self._origin(url)
        attempt = 0
        while True:
            attempt += 1
            retry_left = attempt <= self.retries
            try:
                connection = origin.take(connect_timeout)
            except ssl.SSLError as exc:  # the upstream's certificate or TLS: retrying won't change it
                raise TransportError(exc, connecting=True) from exc
            except OSError as exc:  # refused, unreachable, timed out, a name that doesn't resolve
                if not retry_left:
                    raise TransportError(exc, connecting=True) from exc
                self._pause(attempt, method, target, exc)
                continue
            try:
                connection.sock.settimeout(read_timeout)
                connection.request(method, target, body=body, headers=headers)
                response = connection.getresponse()
                data = response.read()
            except (OSError, http.client.HTTPException) as exc:
                connection.close()
                if not (retry_left and method in RETRYABLE_METHODS):
                    raise TransportError(exc, connecting=False) from exc
                self._pause(attempt, method, target, exc)
                continue
            except BaseException:  # a header http.client refuses, an interruption: the connection's state is unknown
                connection.close()
                raise
            if response.will_close:
                connection.close()
            else:
                origin.give_back(connection)
            if response.status in RETRY_STATUSES and retry_left and method in RETRYABLE_METHODS:
                self._pause(attempt, method, target, f"status {response.status}")
                continue
            return Response(response.status, response.headers, data)

    def _pause(self, attempt: int, method: str, target: str, reason: object) -> None:
        # The target's path only: a query may carry user ids.
        path = target.split("?", 1)[0]
        logger.info("Retrying %s %s after %s (retry %d of %d)", method, path, _reason(reason), attempt, self.retries)
        pause = backoff(attempt)
        if pause:
            time.sleep(pause)

    def close(self) -> None:
        with self._origins_lock:
            for origin in self._origins.values():
                origin.close()
            self._origins.clear()


def _reason(reason: object) -> str:
    return type(reason).__name__ if isinstance(reason, BaseException) else str(reason)
