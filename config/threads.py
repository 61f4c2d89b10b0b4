"""The threads that run the sync work of async code: a few per process, each keeping its database connection.

Django's ORM is sync, so async code (turns, websockets, the streaming views) hands its database work to
threads. asgiref's defaults were costly here: Django's ASGI handler gives each request a thread of its
own, made for it and dropped after it, and each opened a database connection of its own (on SQLite the
connection and its pragmas cost as much as the rest of a small request); a turn that outlived its request
kept that thread and connection until it ended. On PostgreSQL one process under 64 clients held 84-95
connections and answered 500s ("too many clients"; issue 26).

Here ASYNC_THREADS lanes (one thread each) do all of it: a streaming request's sync parts (Django's
signals, sync middleware, sync views) run on one lane, pinned for the request (asgiref's
ThreadSensitiveContext with an executor, `request_context`), and `run()` gives any other sync call (a
turn's writes, a socket's reads) the least busy lane. Each lane keeps its connection (CONN_MAX_AGE), so
a process holds at most WSGI_THREADS + ASYNC_THREADS + 1 database connections (the 1: channels' own
thread, used by its session authentication on websockets).
"""

from __future__ import annotations

import asyncio
import contextvars
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, TypeVar

from asgiref.sync import ThreadSensitiveContext
from django.conf import settings
from django.db import close_old_connections

T = TypeVar("T")


class Lane(ThreadPoolExecutor):
    """One thread, and how many calls are queued on it or running (to pick the least busy lane)."""

    def __init__(self, name: str) -> None:
        super().__init__(max_workers=1, thread_name_prefix=name)
        self.pending = 0
        self.submitted = 0  # calls ever given (tests count the hops of a request)
        self._count_lock = threading.Lock()

    def submit(self, fn, /, *args, **kwargs) -> Future:
        with self._count_lock:
            self.pending += 1
            self.submitted += 1
        future = super().submit(fn, *args, **kwargs)
        future.add_done_callback(self._done)
        return future

    def _done(self, _future: Future) -> None:
        with self._count_lock:
            self.pending -= 1


class AsyncThreads:
    def __init__(self, size: int) -> None:
        self.lanes = [Lane(f"async-sync-{number}") for number in range(size)]

    def least_busy(self) -> Lane:
        return min(self.lanes, key=lambda lane: lane.pending)

    async def run(self, fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> T:
        """`fn(*args, **kwargs)` on the least busy lane, in a copy of the caller's context (the request
        id for log lines, the audit actor), its connection checked first as Django checks a request's
        (broken or past CONN_MAX_AGE: replaced)."""
        context = contextvars.copy_context()
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self.least_busy(), context.run, _call, fn, args, kwargs)

    def request_context(self) -> ThreadSensitiveContext:
        """The context Django's ASGI handler serves a request in: its thread-sensitive calls all on one
        lane (as asgiref promises them one thread), never a thread of its own."""
        return ThreadSensitiveContext(executor=self.least_busy())

    def shutdown(self) -> None:
        for lane in self.lanes:
            lane.shutdown(wait=True)


def _call(fn: Callable[..., T], args: tuple, kwargs: dict) -> T:
    close_old_connections()
    return fn(*args, **kwargs)


_threads: AsyncThreads | None = None
_threads_guard = threading.Lock()


def async_threads() -> AsyncThreads:
    """The process's lanes (made on first use: a forked worker makes its own)."""
    global _threads
    if _threads is None:
        with _threads_guard:
            if _threads is None:
                _threads = AsyncThreads(settings.ASYNC_THREADS)
    return _threads


async def run_sync(fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> T:
    """Run sync (ORM) work from async code on one of the process's lanes."""
    return await async_threads().run(fn, *args, **kwargs)


def close_connections_on_lanes() -> None:
    """Close every lane's database connections (tests: before the test database is dropped)."""
    from django.db import connections

    for lane in async_threads().lanes:
        lane.submit(connections.close_all).result()
