"""Tests: the SQL statements this process runs, on whichever thread: the test's own, the async lanes
(config/threads.py) and channels' database thread."""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Iterator

from asgiref.sync import SyncToAsync
from django.db import connection

from config.threads import async_threads


@contextlib.contextmanager
def statements_recorded() -> Iterator[list[str]]:
    """Yields the list the statements are appended to while the block runs (from sync or async code)."""
    seen: list[str] = []
    guard = threading.Lock()

    def record(execute, sql, params, many, context):
        with guard:
            seen.append(sql)
        return execute(sql, params, many, context)

    threads = [*async_threads().lanes, SyncToAsync.single_thread_executor]

    def on_every_thread(change) -> None:
        try:
            asyncio.get_running_loop()  # an event loop's thread runs no SQL itself
        except RuntimeError:
            change()  # the caller's thread
        for executor in threads:
            executor.submit(change).result()

    on_every_thread(lambda: connection.execute_wrappers.append(record))
    try:
        yield seen
    finally:
        on_every_thread(lambda: connection.execute_wrappers.remove(record))
