"""Django's SQLite backend, with one change: writes from the threads of one process take turns on a
lock of the process before asking SQLite for its write lock: autocommit writes for their statement,
transactions (BEGIN IMMEDIATE) from their start to their commit or rollback.

SQLite has one writer at a time. A writer that finds the lock taken sleeps in SQLite's busy handler
(1, 2, 5, 10 … 100 ms, retried until `timeout`) and does not wake when the lock is freed, while
the other threads keep taking it: under 16 server threads each inserting a row (`POST /session`),
most threads were asleep there and one request in a hundred waited about a second
(bench/RESULTS.md, issue 18). Waiting on a lock of the process instead wakes the next writer as
soon as the statement is done; SQLite allows no more parallel writing than that anyway.

Transactions too: turns are planned and written in transactions from several threads at once
(config/threads.py), and at 16 connections one `/v1` answer in a hundred waited 1-2 s in SQLite's busy
handler (bench/RESULTS.md, issue 26). A transaction holds the lock only while it runs its statements:
none of ours waits for another thread meanwhile (that would be a deadlock here, as it is a lock wait in
SQLite). Other processes still meet SQLite's busy handler, as before.
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

    # Transactions: the process's write lock from BEGIN IMMEDIATE to COMMIT or ROLLBACK.
    _holds_write_lock = False

    def _start_transaction_under_autocommit(self):
        lock = write_lock(str(self.settings_dict["NAME"]))
        # Past the timeout, go ahead: SQLite's own waiting (and its "database is locked") takes over.
        self._holds_write_lock = lock.acquire(timeout=float(self.settings_dict["OPTIONS"].get("timeout", 5)))
        try:
            super()._start_transaction_under_autocommit()
        except BaseException:
            self._release_write_lock()
            raise

    def _commit(self):
        try:
            return super()._commit()
        finally:
            self._release_write_lock()

    def _rollback(self):
        try:
            return super()._rollback()
        finally:
            self._release_write_lock()

    def _close(self):
        try:
            return super()._close()
        finally:
            self._release_write_lock()

    def _release_write_lock(self) -> None:
        if self._holds_write_lock:
            self._holds_write_lock = False
            write_lock(str(self.settings_dict["NAME"])).release()
