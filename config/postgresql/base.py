"""Django's PostgreSQL backend, with one change: the per-request health check of a kept connection
(CONN_HEALTH_CHECKS) asks the connection's socket before asking the server.

Django checks a reused connection with a `SELECT 1` before the request's first query: one round
trip per request, on every request, however busy the server (0.06 ms of CPU and 0.11 ms of wall time
on loopback, more across a network, and under load one more time each server thread blocks and
takes the GIL back: bench/RESULTS.md, issue 18). A connection the server has dropped (a restart,
`pg_terminate_backend`, an idle timeout) has something to read: the server's last message or the
end of the stream. So a connection that is open, idle (no transaction), and has nothing to read is
taken as healthy without the round trip; anything else gets Django's `SELECT 1`, as before. What
this can't see (a network that silently stopped carrying packets) `SELECT 1` would only have seen
after a TCP timeout too.
"""

from __future__ import annotations

from django.db.backends.postgresql import base
from psycopg import pq

from config.sockets import idle_and_quiet


def _quiet(connection) -> bool:
    """Open, idle outside a transaction, and nothing waiting to be read."""
    pgconn = connection.pgconn
    if connection.closed or pgconn.status != pq.ConnStatus.OK:
        return False
    if pgconn.transaction_status != pq.TransactionStatus.IDLE:
        return False
    return idle_and_quiet(pgconn.socket)


class DatabaseWrapper(base.DatabaseWrapper):
    def close_if_health_check_failed(self):
        if (
            self.connection is not None
            and self.health_check_enabled
            and not self.health_check_done
            and not self.pool
            and _quiet(self.connection)
        ):
            self.health_check_done = True
            return
        super().close_if_health_check_failed()
