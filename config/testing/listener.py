"""A TCP listener on 127.0.0.1 that records every connection it accepts: the target of request-forgery
tests, which must show that our clients never reach it (and, without the guard, that they do)."""

from __future__ import annotations

import socket
import threading
from contextlib import contextmanager
from typing import Iterator


class RecordingListener:
    def __init__(self, sock: socket.socket):
        self.sock = sock
        self.port: int = sock.getsockname()[1]
        self.accepted = 0

    def serve(self) -> None:
        while True:
            try:
                connection, _ = self.sock.accept()
            except OSError:
                return  # closed
            self.accepted += 1
            connection.close()  # no answer: a client that got here fails fast


@contextmanager
def recording_listener() -> Iterator[RecordingListener]:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    sock.listen(16)
    listener = RecordingListener(sock)
    thread = threading.Thread(target=listener.serve, daemon=True)
    thread.start()
    try:
        yield listener
    finally:
        try:
            sock.shutdown(socket.SHUT_RDWR)  # wakes the blocked accept() on Linux
        except OSError:
            pass
        sock.close()
        thread.join(timeout=5)
