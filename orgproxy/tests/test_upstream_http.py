"""The Claire HTTP client (orgproxy.upstream_http) against a real HTTP/1.1 server on 127.0.0.1 whose
connections can be closed, dropped or answered as a real upstream (or a proxy in front of it) does."""

from __future__ import annotations

import datetime
import ipaddress
import json
import socket
import ssl
import threading
import time
from dataclasses import dataclass, field
from typing import Callable

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from orgproxy.upstream_http import KeepAliveClient, TransportError, backoff

HEADERS = {"Accept": "application/json"}
TIMEOUTS = {"connect_timeout": 2.0, "read_timeout": 2.0}


@dataclass
class Received:
    connection: int  # which accepted connection, counted from 0
    method: str
    target: str
    body: bytes


@dataclass
class Upstream:
    """Answers each request with `behave(received) -> str`:
    "ok" (200, kept alive), "close" (200 with Connection: close), "drop" (closes without an answer),
    "ok-then-hang-up" (200 kept alive, then closes the idle connection, as a keep-alive timeout does),
    "503" (kept alive)."""

    behave: Callable[[Received], str] = lambda received: "ok"
    tls: ssl.SSLContext | None = None
    received: list[Received] = field(default_factory=list)
    connections: int = 0

    def __post_init__(self):
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.url = f"{'https' if self.tls else 'http'}://127.0.0.1:{self.port}"
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                sock, _ = self.listener.accept()
            except OSError:
                return
            index, self.connections = self.connections, self.connections + 1
            threading.Thread(target=self._serve, args=(sock, index), daemon=True).start()

    def _serve(self, sock: socket.socket, index: int) -> None:
        try:
            if self.tls is not None:
                sock = self.tls.wrap_socket(sock, server_side=True)
            reader = sock.makefile("rb")
            while True:
                request_line = reader.readline()
                if not request_line:
                    return
                method, target, _ = request_line.decode().split(" ", 2)
                length = 0
                while (line := reader.readline()) not in (b"\r\n", b""):
                    name, _, value = line.decode().partition(":")
                    if name.strip().lower() == "content-length":
                        length = int(value)
                received = Received(index, method, target, reader.read(length))
                self.received.append(received)
                action = self.behave(received)
                if action == "drop":
                    return
                status = "503 Service Unavailable" if action == "503" else "200 OK"
                payload = json.dumps({"connection": index}).encode()
                extra = "Connection: close\r\n" if action == "close" else ""
                sock.sendall(
                    f"HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {len(payload)}\r\n"
                    f"{extra}\r\n".encode() + payload
                )
                if action in ("close", "ok-then-hang-up"):
                    return
        except (OSError, ValueError):
            return
        finally:
            sock.close()

    def close(self) -> None:
        self.listener.close()


@pytest.fixture
def upstream():
    made = []

    def make(**kwargs) -> Upstream:
        made.append(Upstream(**kwargs))
        return made[-1]

    yield make
    for server in made:
        server.close()


def get(client: KeepAliveClient, url: str, method: str = "GET"):
    return client.request(method, url, headers=HEADERS, body=b"{}" if method == "POST" else None, **TIMEOUTS)


def test_calls_reuse_one_connection(upstream):
    server = upstream()
    client = KeepAliveClient(retries=0, max_idle_per_origin=4)

    answers = [get(client, f"{server.url}/bots") for _ in range(3)]

    assert [json.loads(answer.data) for answer in answers] == [{"connection": 0}] * 3
    assert server.connections == 1
    [origin] = client._origins.values()
    [kept] = origin.idle
    assert kept.sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)  # no Nagle delay on a second write


def test_a_connection_the_upstream_closed_while_idle_is_replaced_and_a_post_is_sent_once(upstream):
    server = upstream(behave=lambda received: "ok-then-hang-up")
    client = KeepAliveClient(retries=0, max_idle_per_origin=4)  # no retries: the stale connection must not be used
    get(client, f"{server.url}/bots")
    time.sleep(0.2)  # the upstream has closed the kept connection by now

    answer = get(client, f"{server.url}/m2m/client_sessions", method="POST")

    assert answer.status == 200 and json.loads(answer.data) == {"connection": 1}
    assert [(r.connection, r.method) for r in server.received] == [(0, "GET"), (1, "POST")]


def test_an_answer_with_connection_close_is_not_reused(upstream):
    server = upstream(behave=lambda received: "close")
    client = KeepAliveClient(retries=0, max_idle_per_origin=4)

    answers = [get(client, f"{server.url}/bots") for _ in range(2)]

    assert [json.loads(answer.data)["connection"] for answer in answers] == [0, 1]


def test_a_get_whose_answer_never_came_is_retried_but_a_post_is_never_resent(upstream):
    server = upstream(behave=lambda received: "drop")
    client = KeepAliveClient(retries=2, max_idle_per_origin=4)

    with pytest.raises(TransportError) as dropped_get:
        get(client, f"{server.url}/bots")
    with pytest.raises(TransportError) as dropped_post:
        get(client, f"{server.url}/m2m/client_sessions", method="POST")

    assert [r.method for r in server.received] == ["GET", "GET", "GET", "POST"]
    assert not dropped_get.value.timed_out and not dropped_get.value.connecting
    assert not dropped_post.value.connecting


def test_a_get_answered_503_is_retried_then_the_last_answer_returned(upstream):
    server = upstream(behave=lambda received: "503")
    client = KeepAliveClient(retries=2, max_idle_per_origin=4)

    answer = get(client, f"{server.url}/bots")

    assert answer.status == 503
    assert len(server.received) == 3
    assert server.connections == 1  # a 503 with keep-alive leaves the connection usable


def test_a_read_timeout_is_reported_as_one():
    with socket.create_server(("127.0.0.1", 0)) as silent:  # accepts (the kernel does), never answers
        client = KeepAliveClient(retries=0, max_idle_per_origin=4)
        started = time.monotonic()
        with pytest.raises(TransportError) as timed_out:
            client.request("GET", f"http://127.0.0.1:{silent.getsockname()[1]}/bots", headers=HEADERS,
                           connect_timeout=2.0, read_timeout=0.2)  # fmt: skip

    assert timed_out.value.timed_out and not timed_out.value.connecting
    assert time.monotonic() - started < 1.5


def test_a_refused_connection_is_retried_for_any_method_with_backoff(closed_port_url):
    client = KeepAliveClient(retries=3, max_idle_per_origin=4)
    started = time.monotonic()

    with pytest.raises(TransportError) as refused:
        get(client, f"{closed_port_url}/m2m/client_sessions", method="POST")

    assert refused.value.connecting and not refused.value.timed_out
    # Nothing was sent, so a POST too is retried: pauses 0 + 0.2 + 0.4 before the last attempt.
    assert time.monotonic() - started >= backoff(1) + backoff(2) + backoff(3) == pytest.approx(0.6)


def test_idle_connections_beyond_the_limit_are_closed(upstream):
    barrier = threading.Barrier(4)

    def hold_all_four(received):
        barrier.wait(timeout=5)  # four requests in flight at once: four connections
        return "ok"

    server = upstream(behave=hold_all_four)
    client = KeepAliveClient(retries=0, max_idle_per_origin=2)
    threads = [threading.Thread(target=get, args=(client, f"{server.url}/bots")) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=10)
    assert server.connections == 4

    [origin] = client._origins.values()
    assert len(origin.idle) == 2


def _certificate(common_name: str) -> tuple[bytes, bytes]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    now = datetime.datetime.now(datetime.timezone.utc)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    return certificate.public_bytes(serialization.Encoding.PEM), key_pem


@pytest.fixture
def tls_server_context(tmp_path):
    certificate, key = _certificate("fake-claire")
    (tmp_path / "cert.pem").write_bytes(certificate)
    (tmp_path / "key.pem").write_bytes(key)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(tmp_path / "cert.pem", tmp_path / "key.pem")
    return context, tmp_path / "cert.pem"


def test_an_upstream_certificate_that_is_not_trusted_is_refused_and_not_retried(upstream, tls_server_context):
    context, _ = tls_server_context
    server = upstream(tls=context)
    client = KeepAliveClient(retries=2, max_idle_per_origin=4)

    with pytest.raises(TransportError) as refused:
        get(client, f"{server.url}/bots")

    assert isinstance(refused.value.__cause__, ssl.SSLCertVerificationError)
    assert server.received == []
    time.sleep(0.1)
    assert server.connections == 1


def test_https_with_a_trusted_certificate_keeps_its_connection(upstream, tls_server_context, monkeypatch):
    context, certificate_file = tls_server_context
    monkeypatch.setenv("SSL_CERT_FILE", str(certificate_file))  # the trust store the default context loads
    server = upstream(tls=context)
    client = KeepAliveClient(retries=0, max_idle_per_origin=4)

    answers = [get(client, f"{server.url}/bots") for _ in range(2)]

    assert [answer.status for answer in answers] == [200, 200]
    assert server.connections == 1


def test_a_header_value_with_a_line_break_is_refused_before_anything_is_sent(upstream):
    server = upstream()
    client = KeepAliveClient(retries=0, max_idle_per_origin=4)

    with pytest.raises(ValueError):
        injected = {"Authorization": "Bearer x\r\nX-Injected: 1"}
        client.request("GET", f"{server.url}/bots", headers=injected, **TIMEOUTS)
    answer = get(client, f"{server.url}/bots")  # the pool is not left with a half-written connection

    assert answer.status == 200
    assert [r.method for r in server.received] == ["GET"]
