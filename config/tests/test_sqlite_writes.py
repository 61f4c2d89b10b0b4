"""The SQLite backend (config/sqlite): a process's autocommit writes take turns on a lock of the
process instead of meeting SQLite's busy handler, which sleeps and lets others overtake (issue 18:
one `POST /session` in a hundred waited about a second under 16 threads)."""

from __future__ import annotations

import sqlite3
import threading

import pytest
from django.db import connection as default_connection
from django.db.backends.sqlite3.base import DatabaseWrapper as DjangoDatabaseWrapper

from config.sqlite.base import DatabaseWrapper, _is_write

THREADS = 8
INSERTS_PER_THREAD = 150


def settings_for(path, *, timeout: float, init_command: str = "") -> dict:
    # With timeout 0 SQLite's busy handler never waits: a writer that meets another one fails at once
    # with "database is locked", which makes every collision between this process's writers visible.
    return {
        **default_connection.settings_dict,
        "ENGINE": "config.sqlite",
        "NAME": str(path),
        "OPTIONS": {"timeout": timeout, "transaction_mode": "IMMEDIATE", "init_command": init_command},
        "CONN_MAX_AGE": 0,
    }


def write_from_threads(wrapper_class, path) -> list[BaseException]:
    # WAL (as config/settings.py sets) once, here: switching modes at each writer's connect would
    # itself need the lock.
    setup = wrapper_class(settings_for(path, timeout=5, init_command="PRAGMA journal_mode=WAL;"), alias="setup")
    with setup.cursor() as cursor:
        cursor.execute("CREATE TABLE IF NOT EXISTS rows (id INTEGER PRIMARY KEY, thread INTEGER, n INTEGER)")
        cursor.execute("DELETE FROM rows")
    setup.close()
    failures: list[BaseException] = []
    start = threading.Barrier(THREADS)

    def writer(index: int) -> None:
        wrapper = wrapper_class(settings_for(path, timeout=0), alias=f"writer-{index}")
        started = False
        try:
            with wrapper.cursor() as cursor:  # connected and reading the WAL before the writing starts
                # Patient while connecting (opening a WAL database can meet another connection
                # doing the same), then no waiting at all in SQLite for the writes under test.
                cursor.execute("PRAGMA busy_timeout = 10000")
                cursor.execute("SELECT COUNT(*) FROM rows")
                cursor.execute("PRAGMA busy_timeout = 0")
            start.wait(timeout=60)
            started = True
            for n in range(INSERTS_PER_THREAD):
                with wrapper.cursor() as cursor:
                    cursor.execute("INSERT INTO rows (thread, n) VALUES (%s, %s)", [index, n])
        except BaseException as exc:  # noqa: BLE001 — collected and asserted on below
            failures.append(exc)
            if not started:
                start.abort()  # the others stop waiting for this one
        finally:
            wrapper.close()

    threads = [threading.Thread(target=writer, args=(i,)) for i in range(THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    return failures


@pytest.fixture(autouse=True)
def own_databases(django_db_blocker):
    # These tests open their own SQLite files, never the test database.
    with django_db_blocker.unblock():
        yield


class PatientDatabaseWrapper(DatabaseWrapper):
    """Ours, waiting for the process's lock as long as it takes (the lock waits for `timeout` too,
    and these connections have SQLite's set to 0)."""

    def create_cursor(self, name=None):
        cursor = super().create_cursor(name)
        cursor.lock_timeout = 60
        return cursor


def test_concurrent_autocommit_writes_of_one_process_never_meet_the_busy_handler(tmp_path):
    failures = write_from_threads(PatientDatabaseWrapper, tmp_path / "db.sqlite3")

    assert failures == []
    with sqlite3.connect(tmp_path / "db.sqlite3") as check:
        assert check.execute("SELECT COUNT(*) FROM rows").fetchone() == (THREADS * INSERTS_PER_THREAD,)


def test_without_the_lock_the_same_writers_collide(tmp_path):
    # The control: Django's own backend, same threads and statements. If this stopped failing, the
    # test above would no longer show anything.
    failures = write_from_threads(DjangoDatabaseWrapper, tmp_path / "db.sqlite3")

    assert failures and all("database is locked" in str(exc) for exc in failures)


def test_transactions_are_left_to_sqlite_and_do_not_take_the_lock(tmp_path):
    from config.sqlite.base import write_lock

    path = tmp_path / "db.sqlite3"
    setup = DatabaseWrapper(settings_for(path, timeout=5), alias="setup")
    with setup.cursor() as cursor:
        cursor.execute("CREATE TABLE t (x INTEGER)")
    setup.close()
    done = threading.Event()

    def transaction() -> None:
        wrapper = PatientDatabaseWrapper(settings_for(path, timeout=5), alias="tx")
        try:
            # What transaction.atomic() does on SQLite: BEGIN IMMEDIATE, the statements, COMMIT.
            wrapper.set_autocommit(False, force_begin_transaction_with_broken_autocommit=True)
            with wrapper.cursor() as cursor:
                cursor.execute("INSERT INTO t VALUES (1)")
            wrapper.commit()
            wrapper.set_autocommit(True)
            done.set()
        finally:
            wrapper.close()

    lock = write_lock(str(path))
    lock.acquire()  # held elsewhere: an autocommit write would wait for it, a transaction doesn't
    try:
        worker = threading.Thread(target=transaction)
        worker.start()
        worker.join(timeout=30)
        assert done.is_set()
    finally:
        lock.release()
    worker.join(timeout=60)


@pytest.mark.parametrize(
    ("query", "writes"),
    [("INSERT INTO t VALUES (1)", True), ("  update t set x = 1", True), ("DELETE FROM t", True),
     ("REPLACE INTO t VALUES (1)", True), ("SELECT 1", False), ("BEGIN IMMEDIATE", False), ("", False),
     ("INSERTED", False)],
)  # fmt: skip
def test_what_counts_as_a_write(query, writes):
    assert _is_write(query) is writes
