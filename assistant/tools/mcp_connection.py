"""One connection to an MCP server: its start-up, its client, why it failed.

Each connection lives in a task of its own, which enters the MCP client and leaves it again: the
client's task groups and cancel scopes must be entered and exited by the same task, whatever task
later calls a tool. That task ends when the connection is closed and also when the server goes away
by itself (its process exited, its stream ended), so a connection kept between turns (mcp_pool) is
known to be dead before it is handed out again.
"""

from __future__ import annotations

import asyncio
import logging
import tempfile
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import observability
from assistant.tools.mcp_config import McpServerSpec, McpStartError, safe_url
from config.egress import egress_refusal, guarded_http_client

logger = logging.getLogger(__name__)


class _EndWatch:
    """A transport's read stream that tells its connection when it ends: a stdio server's stdout
    closes when its process exits, an SSE stream when the connection drops. (The MCP client alone
    only fails the calls waiting then; the connection would look alive until its next call.)"""

    def __init__(self, inner: Any, on_end: Any):
        import anyio

        self.inner, self.on_end = inner, on_end
        self.end_of_stream = anyio.EndOfStream
        self.ended = (anyio.EndOfStream, anyio.ClosedResourceError, anyio.BrokenResourceError)

    @property
    def last_context(self) -> Any:  # the sender's context, which the SDK's dispatcher reads if present
        return getattr(self.inner, "last_context", None)

    async def receive(self) -> Any:
        try:
            return await self.inner.receive()
        except self.ended:
            self.on_end()
            raise

    def __aiter__(self) -> _EndWatch:
        return self

    async def __anext__(self) -> Any:
        try:
            return await self.receive()
        except self.end_of_stream:
            raise StopAsyncIteration from None

    async def aclose(self) -> None:
        await self.inner.aclose()

    async def __aenter__(self) -> _EndWatch:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()


class McpConnection:
    def __init__(self, spec: McpServerSpec, *, cwd: Path | None, verbose: bool, call_timeout: float):
        self.spec = spec
        self.cwd = cwd
        self.call_timeout = call_timeout
        self.client: Any = None
        self.tools: list[Any] = []
        self.ready: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.failure = ""  # why it did not start, said when it failed (its stderr is gone after)
        self.stop = asyncio.Event()
        self.task: asyncio.Task | None = None
        # A call on it failed without an answer from the server, or was abandoned (a stop, the tool
        # timeout) while the server may still be working on it: it serves no further turn.
        self.spoiled = False
        self.key: Any = None  # mcp_pool's key, when it is kept between turns
        self.idle_since = 0.0  # mcp_pool: when it was last given back
        # A stdio server's stderr: passed through with -v 2, else kept to explain a failed start.
        self.errlog = None if verbose else tempfile.TemporaryFile("w+", encoding="utf-8", errors="replace")
        self._stderr_tail = ""  # the last line, kept when errlog is closed

    def start(self) -> None:
        self.task = asyncio.create_task(self.serve(), name=f"mcp:{self.spec.name}")

    @property
    def usable(self) -> bool:
        """Started, not closing, not gone, not spoiled: fit for a call, or for another turn."""
        return (
            self.client is not None
            and not self.stop.is_set()
            and not self.spoiled
            and self.task is not None
            and not self.task.done()
        )

    async def wait_ready(self, name: str, timeout: float) -> None:
        """Until it has started; McpStartError naming `name` (the turn's name for it) if it doesn't."""
        try:
            await asyncio.wait_for(asyncio.shield(self.ready), timeout)
        except asyncio.CancelledError:
            if self.ready.cancelled() and not asyncio.current_task().cancelling():
                # Closed while it started (the process shuts down), not the caller cancelled.
                raise McpStartError(f"MCP server {name!r} failed to start: closed while starting") from None
            raise
        except Exception as exc:  # noqa: BLE001 - every start failure becomes one readable line
            reason = self.failure or failure_reason(exc, self)
            raise McpStartError(f"MCP server {name!r} failed to start: {reason}") from None

    def begin_close(self) -> None:
        """Ask its task to close the client (and stop a stdio server); `close_connections` waits."""
        self.stop.set()
        if not self.ready.done() and self.task is not None:
            self.task.cancel()  # still in the handshake: nothing to wind down politely
        elif self.ready.done() and not self.ready.cancelled():
            self.ready.exception()  # retrieved: a failure was reported already

    def _stream_ended(self) -> None:
        # The server went away by itself: the task leaves the client (its end tells the pool).
        if not self.stop.is_set():
            logger.warning(
                "MCP server %s (%s) went away; its connection is closed", self.spec.name, self.spec.describe()
            )
            self.stop.set()

    @asynccontextmanager
    async def _transport(self) -> AsyncIterator[Any]:
        import sys

        from mcp.client.sse import sse_client
        from mcp.client.stdio import StdioServerParameters, stdio_client
        from mcp.client.streamable_http import streamable_http_client
        from mcp.shared._httpx_utils import create_mcp_http_client

        spec = self.spec
        # A guarded server gets the guarded client, with the timeouts of the SDK's own factory.
        http_client_factory = _guarded_mcp_http_client if spec.guard_egress else create_mcp_http_client
        if spec.transport == "stdio":
            params = StdioServerParameters(
                command=spec.command, args=list(spec.args), env=dict(spec.env) or None, cwd=self.cwd
            )
            async with stdio_client(params, errlog=self.errlog or sys.stderr) as (read, write):
                yield _EndWatch(read, self._stream_ended), write
        elif spec.transport == "sse":
            async with sse_client(
                spec.url, headers=_headers(spec), httpx_client_factory=http_client_factory
            ) as (read, write):
                yield _EndWatch(read, self._stream_ended), write
        else:
            http = http_client_factory(headers=_headers(spec))
            async with http, streamable_http_client(spec.url, http_client=http) as (read, write):
                yield _EndWatch(read, self._stream_ended), write

    async def serve(self) -> None:
        from mcp import Client
        from mcp_types import Implementation

        try:
            async with Client(
                self._transport(),
                read_timeout_seconds=self.call_timeout,
                client_info=Implementation(name="conduit-orchestrator", version="1"),
            ) as client:
                tools, cursor = [], None
                while True:
                    page = await client.list_tools(cursor=cursor)
                    tools.extend(page.tools)
                    cursor = page.next_cursor
                    if not cursor:
                        break
                self.client, self.tools = client, tools
                self.ready.set_result(None)
                logger.info("MCP server %s started (%s): %d tools", self.spec.name, self.spec.describe(), len(tools))
                await self.stop.wait()
        except BaseException as exc:
            started = self.ready.done()
            if not started:
                if isinstance(exc, Exception):
                    self.failure = failure_reason(exc, self)
                    self.ready.set_exception(exc)
                else:
                    self.ready.cancel()
            if not isinstance(exc, (Exception, asyncio.CancelledError)):
                raise
            if started and not self.stop.is_set() and isinstance(exc, Exception):
                logger.warning("MCP server %s stopped unexpectedly: %s", self.spec.name, failure_reason(exc, self))
        finally:
            self.client = None
            if self.errlog is not None:
                self._stderr_tail = self.stderr_tail()
                self.errlog.close()

    def stderr_tail(self) -> str:
        if self.errlog is None or self.errlog.closed:
            return self._stderr_tail
        self.errlog.seek(0)
        lines = [line.strip() for line in self.errlog.read()[-4000:].splitlines() if line.strip()]
        return lines[-1][:300] if lines else ""


def _headers(spec) -> dict[str, str] | None:
    """The server's headers, and the trace context (`traceparent`) of the turn that opens the connection when
    tracing is on (a pooled connection keeps it: its requests are sent by the connection's own task)."""
    return {**dict(spec.headers), **observability.trace_headers()} or None


def _guarded_mcp_http_client(
    headers: dict[str, str] | None = None, timeout: Any = None, auth: Any = None
) -> Any:
    """mcp's `create_mcp_http_client` (an McpHttpClientFactory) on the egress-guarded client."""
    import httpx2
    from mcp.shared._httpx_utils import MCP_DEFAULT_SSE_READ_TIMEOUT, MCP_DEFAULT_TIMEOUT

    timeout = timeout or httpx2.Timeout(MCP_DEFAULT_TIMEOUT, read=MCP_DEFAULT_SSE_READ_TIMEOUT)
    kwargs: dict[str, Any] = {"timeout": timeout}
    if headers is not None:
        kwargs["headers"] = headers
    if auth is not None:
        kwargs["auth"] = auth
    return guarded_http_client(**kwargs)


def _leaf(exc: BaseException) -> BaseException:
    while isinstance(exc, BaseExceptionGroup) and exc.exceptions:
        exc = exc.exceptions[0]
    return exc


def failure_reason(exc: BaseException, connection: McpConnection) -> str:
    exc = _leaf(exc)
    spec = connection.spec
    refused = egress_refusal(exc)
    if refused is not None:
        return str(refused)
    if isinstance(exc, FileNotFoundError) and spec.transport == "stdio":
        return f"command not found: {spec.command}"
    if isinstance(exc, PermissionError) and spec.transport == "stdio":
        return f"command is not executable: {spec.command}"
    if isinstance(exc, (TimeoutError, asyncio.TimeoutError)):
        reason = "no answer to the MCP handshake in time"
    elif type(exc).__module__.split(".")[0] in {"httpx", "httpx2", "httpcore", "httpcore2"}:
        status = getattr(getattr(exc, "response", None), "status_code", None)
        reason = f"HTTP {status} from {safe_url(spec.url)}" if status else f"could not connect to {safe_url(spec.url)}"
    else:
        message = getattr(exc, "message", None) or str(exc) or type(exc).__name__
        reason = message if spec.transport == "stdio" else message.replace(spec.url, safe_url(spec.url))
    tail = connection.stderr_tail()
    return f"{reason} (stderr: {tail})" if tail else reason


async def close_connections(connections: list[McpConnection], *, timeout: float = 10) -> None:
    """Close `connections` and wait for their tasks, at most `timeout` + 2 s: a stdio server is told
    to exit (its stdin closed), then its process group is stopped (the SDK bounds each step: ~7 s at
    worst). Only a task still running after `timeout` is cancelled: cancelling one while it closes
    can cut that sequence short and leave its server running."""
    for connection in connections:
        connection.begin_close()
    tasks = [c.task for c in connections if c.task is not None and not c.task.done()]
    if tasks:
        _, pending = await asyncio.wait(tasks, timeout=timeout)
        for task in pending:
            task.cancel()
        if pending:
            await asyncio.wait(pending, timeout=2)


def server_answered(exc: Exception) -> bool:
    """A call's failure that the server itself answered (an error response): its connection is fine."""
    from mcp.shared.exceptions import MCPError
    from mcp_types import CONNECTION_CLOSED, REQUEST_TIMEOUT

    return isinstance(exc, MCPError) and exc.code not in {CONNECTION_CLOSED, REQUEST_TIMEOUT}
