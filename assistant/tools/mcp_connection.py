"""One connection to an MCP server: its start-up, its client, why it failed.

Each connection lives in a task of its own, which enters the MCP client and leaves it again: the
client's task groups and cancel scopes must be entered and exited by the same task, whatever task
later calls a tool.
"""

from __future__ import annotations

import asyncio
import logging
import tempfile
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from assistant.tools.mcp_config import McpServerSpec, safe_url
from config.egress import egress_refusal, guarded_http_client

logger = logging.getLogger(__name__)


class McpConnection:
    def __init__(self, spec: McpServerSpec, *, cwd: Path | None, verbose: bool, call_timeout: float):
        self.spec = spec
        self.cwd = cwd
        self.call_timeout = call_timeout
        self.client: Any = None
        self.tools: list[Any] = []
        self.ready: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.stop = asyncio.Event()
        self.task: asyncio.Task | None = None
        # A stdio server's stderr: passed through with -v 2, else kept to explain a failed start.
        self.errlog = None if verbose else tempfile.TemporaryFile("w+", encoding="utf-8", errors="replace")

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
            async with stdio_client(params, errlog=self.errlog or sys.stderr) as streams:
                yield streams
        elif spec.transport == "sse":
            async with sse_client(
                spec.url, headers=dict(spec.headers) or None, httpx_client_factory=http_client_factory
            ) as streams:
                yield streams
        else:
            http = http_client_factory(headers=dict(spec.headers) or None)
            async with http, streamable_http_client(spec.url, http_client=http) as streams:
                yield streams

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
                await self.stop.wait()
        except BaseException as exc:
            started = self.ready.done()
            if not started:
                if isinstance(exc, Exception):
                    self.ready.set_exception(exc)
                else:
                    self.ready.cancel()
            if not isinstance(exc, (Exception, asyncio.CancelledError)):
                raise
            if started and not self.stop.is_set() and isinstance(exc, Exception):
                logger.warning("MCP server %s stopped unexpectedly: %s", self.spec.name, failure_reason(exc, self))
        finally:
            self.client = None

    def stderr_tail(self) -> str:
        if self.errlog is None:
            return ""
        self.errlog.seek(0)
        lines = [line.strip() for line in self.errlog.read()[-4000:].splitlines() if line.strip()]
        return lines[-1][:300] if lines else ""


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
