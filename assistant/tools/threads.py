"""The threads built-in tools run on: a small pool of their own, never asyncio's default executor.

asyncio's default executor (`asyncio.to_thread`, `run_in_executor(None, …)`) serves the whole process — the
DNS lookups of every model call among others — so a tool call stuck there stalls every user's turns (six
`read_file` of a named pipe were enough). Tool calls get ASSISTANT_TOOL_THREADS threads instead. A call
waiting for one waits in the pool's queue, never blocking the event loop; a call cancelled (its timeout, a
stop) leaves the queue, or, already running, is told to stop (`Stop.check()` raises in its thread at its next
check). Nothing a file tool does blocks (regular files only, RE2's linear matching, bounded walks), so an
abandoned call ends soon after: it costs its own turn, not anyone else's.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextvars
import threading
from collections.abc import Callable
from typing import Any, TypeVar

from django.conf import settings

T = TypeVar("T")


class Abandoned(Exception):
    """Raised in a tool's thread at its next check once nobody waits for its result."""


class Stop:
    """Handed to work running in a tool thread: `check()` raises Abandoned once the caller gave up."""

    def __init__(self) -> None:
        self._event = threading.Event()

    def set(self) -> None:
        self._event.set()

    def check(self) -> None:
        if self._event.is_set():
            raise Abandoned


_lock = threading.Lock()
_pool: concurrent.futures.ThreadPoolExecutor | None = None
_pool_size = 0


def tool_executor() -> concurrent.futures.ThreadPoolExecutor:
    """The process's pool for tool calls, of ASSISTANT_TOOL_THREADS threads (a new one if it changed)."""
    global _pool, _pool_size
    size = settings.ASSISTANT_TOOL_THREADS
    with _lock:
        if _pool is None or _pool_size != size:
            previous = _pool
            _pool = concurrent.futures.ThreadPoolExecutor(max_workers=size, thread_name_prefix="conduit-tool")
            _pool_size = size
            if previous is not None:
                previous.shutdown(wait=False)  # its running calls finish; nothing new goes there
    return _pool


async def in_tool_thread(
    function: Callable[..., T],
    *args: Any,
    on_abandoned: Callable[[concurrent.futures.Future], None] | None = None,
) -> T:
    """`function(*args, stop)` in a tool thread. Cancelled while it waits for a thread, it never runs;
    while it runs, its Stop is set and `on_abandoned` gets the future of the work still finishing."""
    stop = Stop()
    context = contextvars.copy_context()  # as asyncio.to_thread: request ids and the like follow
    future = tool_executor().submit(context.run, function, *args, stop)
    try:
        return await asyncio.wrap_future(future)
    except asyncio.CancelledError:
        stop.set()
        if not future.cancel() and not future.done() and on_abandoned is not None:
            on_abandoned(future)
        raise
