"""Warm MCP connections kept between server-side turns: one pool per event loop (a serving process has one).

Starting a stdio MCP server costs seconds (a process, its imports, the handshake); a turn that found
its servers already running asks the model at once. A turn takes the connections it needs (`take`,
starting those missing) and gives them back when it ends (`give_back`); the next turn with the same
server definition reuses them.

The rules:
- A connection is kept under everything that defines it (`connection_key`): transport, command, args
  and env, or url and headers — the credentials are in env and headers —, the egress guard, and a
  stdio server's working directory (the session's workspace when the agent has workspace tools). So
  it never serves a turn whose credentials differ, and an integration whose definition or credentials
  staff changed gets a new connection; the old one goes idle and is closed.
- One turn at a time per connection: the protocol allows concurrent requests on one session, but the
  tool calls of two users would interleave in one server process. A concurrent turn with the same key
  starts another connection; both may be kept.
- A connection idle for ASSISTANT_MCP_IDLE_TIMEOUT seconds is closed; at most ASSISTANT_MCP_POOL_SIZE
  are kept (busy and idle), the least recently used idle ones closed first. A turn needing more still
  gets them; those past the cap are closed when it gives them back (0: nothing is kept).
- Only healthy connections are kept and handed out: one whose server went away (its task ended), or
  on which a call failed without the server's answer or was abandoned (a stop, the tool timeout: the
  server may still be working on it), is closed, and the next turn starts a fresh one.

The pool's connections are tasks of its event loop; `mcp_pool_close()` closes them (tests do at the
end of each test, whose loop ends with it; a serving process when its server stops).
"""

from __future__ import annotations

import asyncio
import logging
import weakref
from collections import OrderedDict
from collections.abc import Iterable
from pathlib import Path

from django.conf import settings

from assistant.tools.mcp_config import McpServerSpec
from assistant.tools.mcp_connection import McpConnection, close_connections

logger = logging.getLogger(__name__)


def connection_key(spec: McpServerSpec, cwd: Path | None) -> tuple:
    """What defines a connection. Holds credentials: never log it. The server's name is not in it
    (tools are named per turn): two integrations with one definition may share connections."""
    return (
        spec.transport,
        spec.command,
        spec.args,
        tuple(sorted(spec.env.items())),
        spec.url,
        tuple(sorted(spec.headers.items())),
        spec.guard_egress,
        str(cwd) if cwd is not None and spec.transport == "stdio" else None,
    )


class McpPool:
    """The warm MCP connections of one event loop."""

    def __init__(self) -> None:
        self.idle: OrderedDict[McpConnection, None] = OrderedDict()  # least recently used first
        self.busy: set[McpConnection] = set()  # taken by a turn (or starting for one)
        self.live: set[McpConnection] = set()  # every connection whose task runs (closing ones too)
        self._reaper: asyncio.Task | None = None

    def __len__(self) -> int:
        """Connections kept: idle and busy (not those closing)."""
        return len(self.idle) + len(self.busy)

    async def take(
        self, specs: Iterable[McpServerSpec], *, cwd: Path | None, start_timeout: float, call_timeout: float
    ) -> dict[str, McpConnection]:
        """A started connection for each spec, by the spec's name: a warm one with its key, else a new
        one. McpStartError naming the server that doesn't start; then none is kept taken."""
        taken: dict[str, McpConnection] = {}
        try:
            for spec in specs:
                key = connection_key(spec, cwd)
                connection = self._warm(key) or self._start(spec, key, cwd=cwd, call_timeout=call_timeout)
                self.busy.add(connection)
                taken[spec.name] = connection
            for name, connection in taken.items():
                await connection.wait_ready(name, start_timeout)
        except BaseException:
            self.give_back(taken.values())
            raise
        return taken

    def give_back(self, connections: Iterable[McpConnection]) -> None:
        """Keep the healthy ones warm (within the cap), close the others."""
        now = asyncio.get_running_loop().time()
        for connection in connections:
            self.busy.discard(connection)
            if connection.usable and settings.ASSISTANT_MCP_POOL_SIZE > 0:
                connection.idle_since = now
                self.idle[connection] = None
            else:
                connection.begin_close()
        self._trim(settings.ASSISTANT_MCP_POOL_SIZE)
        # The idle sweep sleeps until the oldest idle connection expires: scheduled anew (with the
        # timeout of now) whenever connections come back.
        if self._reaper is not None:
            self._reaper.cancel()
        self._reaper = asyncio.create_task(self._close_idle(), name="mcp-pool-idle") if self.idle else None

    async def close(self, *, timeout: float = 10) -> None:
        """Close every connection (those of running turns too), waiting for them, bounded."""
        if self._reaper is not None:
            self._reaper.cancel()
        connections = list(self.live)
        self.idle.clear()
        self.busy.clear()
        await close_connections(connections, timeout=timeout)

    def _warm(self, key: tuple) -> McpConnection | None:
        for connection in reversed(list(self.idle)):  # the most recently used first
            if connection.key != key:
                continue
            del self.idle[connection]
            if connection.usable:
                return connection
            connection.begin_close()  # gone since it was given back (its task's end removes it soon)
        return None

    def _start(self, spec: McpServerSpec, key: tuple, *, cwd: Path | None, call_timeout: float) -> McpConnection:
        self._trim(settings.ASSISTANT_MCP_POOL_SIZE - 1)  # room for it, if idle ones can make it
        connection = McpConnection(spec, cwd=cwd, verbose=False, call_timeout=call_timeout)
        connection.key = key
        connection.start()
        self.live.add(connection)
        connection.task.add_done_callback(lambda _task: self._ended(connection))
        return connection

    def _ended(self, connection: McpConnection) -> None:
        # Its task ended: closed, or its server went away (then it is noticed here, not at the next take).
        self.live.discard(connection)
        self.idle.pop(connection, None)

    def _trim(self, size: int) -> None:
        while self.idle and len(self) > max(size, 0):
            connection, _ = self.idle.popitem(last=False)
            logger.info("MCP server %s closed: the least recently used of %d kept", connection.spec.name, len(self) + 1)
            connection.begin_close()

    async def _close_idle(self) -> None:
        """Close connections idle for ASSISTANT_MCP_IDLE_TIMEOUT; ends when none is idle."""
        loop = asyncio.get_running_loop()
        while self.idle:
            oldest = next(iter(self.idle))
            wait = oldest.idle_since + settings.ASSISTANT_MCP_IDLE_TIMEOUT - loop.time()
            if wait > 0:
                await asyncio.sleep(wait)
                continue
            del self.idle[oldest]
            logger.info("MCP server %s closed: unused for %g s", oldest.spec.name, settings.ASSISTANT_MCP_IDLE_TIMEOUT)
            oldest.begin_close()


_pools: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, McpPool] = weakref.WeakKeyDictionary()


def mcp_pool() -> McpPool:
    """The running event loop's pool."""
    loop = asyncio.get_running_loop()
    pool = _pools.get(loop)
    if pool is None:
        pool = _pools[loop] = McpPool()
    return pool


async def mcp_pool_close(*, timeout: float = 10) -> None:
    """Close the running event loop's pool and its connections (its next use starts a new one)."""
    pool = _pools.pop(asyncio.get_running_loop(), None)
    if pool is not None:
        await pool.close(timeout=timeout)
