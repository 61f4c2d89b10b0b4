"""The HTTP client of OAuth (discovery, registration, tokens, revocation): pooled `requests` sessions,
one per thread (requests' Session is not documented thread-safe), with timeouts and no redirects.

A `guarded` session is for the URLs of an ordinary user's integration: every TCP connection resolves
the host once, checks every address against the egress policy (config/egress.py) and connects to a
checked address, so neither DNS rebinding nor a redirect reaches a private host. No proxies from
the environment (a proxy would connect for us, unchecked). TLS still checks the host's name.
"""

from __future__ import annotations

import socket
import threading
from typing import Any

import requests
from django.conf import settings
from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool

from config import egress


class _GuardedConnectMixin:
    def _new_conn(self) -> socket.socket:  # urllib3's hook: the TCP connect
        host = self._dns_host
        try:
            infos = socket.getaddrinfo(host, self.port, type=socket.SOCK_STREAM)
        except socket.gaierror:
            return super()._new_conn()  # fails with urllib3's own resolution error
        addresses = list(dict.fromkeys(info[4][0] for info in infos))
        egress.check_addresses(self.host, self.port, addresses)
        error: Exception | None = None
        for address in addresses:
            self._dns_host = address  # connect to the address checked; TLS keeps `self.host`
            try:
                return super()._new_conn()
            except Exception as exc:  # noqa: BLE001 - the next address, as create_connection does
                error = exc
            finally:
                self._dns_host = host
        assert error is not None
        raise error


class _GuardedHTTPConnection(_GuardedConnectMixin, HTTPConnection):
    pass


class _GuardedHTTPSConnection(_GuardedConnectMixin, HTTPSConnection):
    pass


class _GuardedHTTPPool(HTTPConnectionPool):
    ConnectionCls = _GuardedHTTPConnection


class _GuardedHTTPSPool(HTTPSConnectionPool):
    ConnectionCls = _GuardedHTTPSConnection


class _GuardedAdapter(HTTPAdapter):
    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = {"http": _GuardedHTTPPool, "https": _GuardedHTTPSPool}


_local = threading.local()


def _session(guarded: bool) -> requests.Session:
    name = "guarded" if guarded else "plain"
    session = getattr(_local, name, None)
    if session is None:
        session = requests.Session()
        adapter = (_GuardedAdapter if guarded else HTTPAdapter)(pool_connections=8, pool_maxsize=8, max_retries=0)
        session.mount("http://", adapter)
        session.mount("https://", adapter)
        session.trust_env = not guarded
        session.headers["User-Agent"] = f"{settings.APP_NAME} (MCP client)"
        setattr(_local, name, session)
    return session


def request(method: str, url: str, *, guarded: bool, **kwargs: Any) -> requests.Response:
    """One request, never following a redirect. Raises egress.EgressRefused for a refused address
    and requests' RequestException for network failures."""
    timeout = (settings.CONNECTIONS_HTTP_CONNECT_TIMEOUT, settings.CONNECTIONS_HTTP_READ_TIMEOUT)
    return _session(guarded).request(method, url, timeout=timeout, allow_redirects=False, **kwargs)
