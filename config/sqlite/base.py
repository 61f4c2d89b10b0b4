"""Django's SQLite backend, with one change: autocommit writes from the threads of one process take
turns on a lock of the process before asking SQLite for its write lock.

SQLite has one writer at a time. A writer that finds the lock taken sleeps in SQLite's busy handler
(1, 2, 5, 10 … 100 ms, retried until `timeout`) and does not wake when the lock is freed, while
the other threads keep taking it: under 16 server threads each inserting a row (`POST /session`),
most threads were asleep there and one request in a hundred waited about a second
(bench/RESULTS.md, issue 18). Waiting on a lock of the process instead wakes the next writer as
soon as the statement is done; SQLite allows no more parallel writing than that anyway.

Only single statements outside a transaction are serialized, so the lock is never held while
anything else is awaited: transactions (BEGIN IMMEDIATE) and other processes still meet SQLite's
busy handler, as before.
"""

from __future__ import annotations

import threading

from django.db.backends.sqlite3 import base

# Statements that write, by their first word (those Django's ORM sends outside transactions).
WRITE_KEYWORDS = frozenset({"INSERT", "UPDATE", "DELETE", "REPLACE"})

_write_locks: dict[str, threading.Lock] = {}
_write_locks_guard = threading.Lock()


def write_lock(database: str) -> threading.Lock:
    """The process's lock for writes to one database file."""
    lock = _write_locks.get(database)
    if lock is None:
        with _write_locks_guard:
            lock = _write_locks.setdefault(database, threading.Lock())
    return lock


def _is_write(query: str) -> bool:
    words = query.lstrip()[:8].split(None, 1)
    return bool(words) and words[0].upper() in WRITE_KEYWORDS


class SQLiteCursorWrapper(base.SQLiteCursorWrapper):
    write_lock: threading.Lock
    lock_timeout: float

    def execute(self, query, params=None):
        if self.connection.in_transaction or not _is_write(query):
            return super().execute(query, params)
        return self._serialized(super().execute, query, params)

    def executemany(self, query, param_list):
        if self.connection.in_transaction or not _is_write(query):
            return super().executemany(query, param_list)
        return self._serialized(super().executemany, query, param_list)

    def _serialized(self, run, query, params):
        # Past the timeout, go ahead: SQLite's own waiting (and its "database is locked") takes over.
        acquired = self.write_lock.acquire(timeout=self.lock_timeout)
        try:
            return run(query, params)
        finally:
            if acquired:
                self.write_lock.release()


class DatabaseWrapper(base.DatabaseWrapper):
    def create_cursor(self, name=None):
        cursor = self.connection.cursor(factory=SQLiteCursorWrapper)
        cursor.write_lock = write_lock(str(self.settings_dict["NAME"]))
        cursor.lock_timeout = float(self.settings_dict["OPTIONS"].get("timeout", 5))
        return cursor
