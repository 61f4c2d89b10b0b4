"""How to tell, without a round trip, that a kept connection went bad while it sat idle."""

from __future__ import annotations

import select
import socket


def idle_and_quiet(sock: socket.socket | int) -> bool:
    """True when an idle kept connection has nothing to read. A peer that closed it (a restart, an
    idle timeout) left its last words or the end of the stream there, so readable means: don't
    reuse it. Asked with poll(), not select(): a busy server has file descriptors past 1023."""
    poller = select.poll()
    poller.register(sock, select.POLLIN)
    return not poller.poll(0)
