"""MCP servers for the orchestrator: configuration, start-up, tools offered to the model, calls.

A server is described as other MCP clients describe it: stdio (`command`, `args`, `env`) or remote
(`type: "sse" | "http"`, `url`, `headers`). Its tools reach the model as `<server>__<tool>`.
Secrets belong in a stdio server's `env` (never in `args`, which any local user can read in the
process list) or in a remote server's `headers`; neither `env` nor `headers` is ever logged.

Each connection lives in a task of its own, which enters the MCP client and leaves it again: the
client's task groups and cancel scopes must be entered and exited by the same task, whatever task
later calls a tool.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import re
import tempfile
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from assistant.engine import ToolCall, ToolOutcome
from config.egress import egress_refusal, guarded_http_client

logger = logging.getLogger(__name__)

TOOL_NAME = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")
SEPARATOR = "__"


class McpConfigError(Exception):
    """The MCP configuration can't be used (missing file, bad JSON, bad server definition)."""


class McpStartError(Exception):
    """An MCP server could not be started or did not answer the handshake."""


@dataclass(frozen=True)
class McpServerSpec:
    name: str
    transport: str  # "stdio" | "sse" | "http"
    command: str = ""
    args: tuple[str, ...] = ()
    env: Mapping[str, str] = field(default_factory=dict)
    url: str = ""
    headers: Mapping[str, str] = field(default_factory=dict)
    # An sse/http url an ordinary user chose: every connection passes the egress policy
    # (config/egress.py). Staff's servers and the CLI's --mcp-config are not guarded.
    guard_egress: bool = False

    def describe(self) -> str:
        """For people and logs: never the env or the headers, never userinfo or a query in a URL."""
        if self.transport == "stdio":
            return " ".join([self.command, *self.args])
        return f"{self.transport} {safe_url(self.url)}"


def safe_url(url: str) -> str:
    parts = urlsplit(url)
    host = parts.hostname or ""
    if parts.port:
        host = f"{host}:{parts.port}"
    return urlunsplit((parts.scheme, host, parts.path, "", ""))


# --- configuration ----------------------------------------------------------------------------

_TRANSPORTS = {"stdio": "stdio", "sse": "sse", "http": "http", "streamable-http": "http", "streamable_http": "http"}


def load_mcp_config(path: str | Path) -> list[McpServerSpec]:
    """Servers of an MCP config file. A missing or malformed file is an error, never an empty list."""
    file = Path(path)
    try:
        text = file.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise McpConfigError(f"MCP config file not found: {path}") from None
    except OSError as exc:
        raise McpConfigError(f"MCP config file can't be read: {path} ({exc.strerror})") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise McpConfigError(
            f"MCP config file is not valid JSON: {path} (line {exc.lineno}, column {exc.colno}: {exc.msg})"
        ) from None
    return parse_mcp_config(data, source=str(path))


def parse_mcp_config(data: Any, *, source: str = "MCP config", guard_egress: bool = False) -> list[McpServerSpec]:
    """`{"name": {...}}` or the `{"mcpServers": {"name": {...}}}` wrapper of other MCP clients.

    `guard_egress` applies to every sse/http server of `data` (the servers of one call share one owner)."""
    if isinstance(data, dict) and "mcpServers" in data:
        data = data["mcpServers"]
    if not isinstance(data, dict):
        raise McpConfigError(f"{source}: expected an object mapping server names to definitions")
    return [
        server_spec(name, definition, source=source, guard_egress=guard_egress) for name, definition in data.items()
    ]


def server_spec(
    name: Any, definition: Any, *, source: str = "MCP config", guard_egress: bool = False
) -> McpServerSpec:
    where = f"{source}: server {name!r}"
    if not isinstance(name, str) or not name.strip():
        raise McpConfigError(f"{source}: server names must be non-empty strings")
    if not isinstance(definition, dict):
        raise McpConfigError(f"{where}: the definition must be an object")
    kind = definition.get("type") or definition.get("transport") or ("stdio" if "command" in definition else "")
    if not kind and "url" in definition:
        kind = "http"
    transport = _TRANSPORTS.get(str(kind).lower())
    if transport is None:
        raise McpConfigError(
            f"{where}: type must be stdio, sse or http (got {kind!r})"
            if kind
            else f"{where}: needs a command (stdio) or a url (sse/http)"
        )
    if transport == "stdio":
        command = definition.get("command")
        if not isinstance(command, str) or not command.strip():
            raise McpConfigError(f"{where}: a stdio server needs a command")
        args = definition.get("args", [])
        if not isinstance(args, list) or not all(isinstance(a, (str, int, float)) for a in args):
            raise McpConfigError(f"{where}: args must be a list of strings")
        env = _string_map(definition.get("env"), f"{where}: env")
        args = tuple(str(a) for a in args)
        for value in env.values():
            if len(value) >= 8 and any(value in arg for arg in args):
                raise McpConfigError(
                    f"{where}: a value of its env also appears in its args; pass secrets through env only"
                )
        return McpServerSpec(name=name, transport="stdio", command=command, args=args, env=env)
    url = definition.get("url")
    if not isinstance(url, str) or urlsplit(url).scheme not in {"http", "https"} or not urlsplit(url).hostname:
        raise McpConfigError(f"{where}: an {transport} server needs an http(s) url")
    headers = _string_map(definition.get("headers"), f"{where}: headers")
    return McpServerSpec(name=name, transport=transport, url=url, headers=headers, guard_egress=guard_egress)


def _string_map(value: Any, where: str) -> dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, dict) or not all(
        isinstance(k, str) and isinstance(v, (str, int, float)) for k, v in value.items()
    ):
        raise McpConfigError(f"{where} must be an object of strings")
    return {k: str(v) for k, v in value.items()}


# --- tool names -------------------------------------------------------------------------------


def namespaced(server: str, tool: str, taken: set[str]) -> str:
    """`<server>__<tool>`, made to fit the API's ^[a-zA-Z0-9_-]{1,64}$ and unique among `taken`."""
    base = re.sub(r"[^a-zA-Z0-9_-]", "_", f"{server}{SEPARATOR}{tool}")
    name = base
    if len(name) > 64 or name in taken:
        digest = hashlib.sha1(f"{server}\x00{tool}".encode()).hexdigest()[:8]
        name = f"{base[:55]}_{digest}"
    if not TOOL_NAME.match(name) or name in taken:
        raise McpStartError(f"MCP server {server!r}: tool {tool!r} can't be given a unique API name")
    return name


# --- results ----------------------------------------------------------------------------------


def result_text(result: Any) -> str:
    """An MCP CallToolResult as the text the model reads."""
    parts: list[str] = []
    for block in result.content or []:
        kind = getattr(block, "type", "")
        if kind == "text":
            parts.append(block.text)
        elif kind == "resource":
            resource = block.resource
            parts.append(resource.text if hasattr(resource, "text") else f"[binary resource {resource.uri}]")
        elif kind == "resource_link":
            parts.append(f"[resource: {block.uri}]")
        elif kind in {"image", "audio"}:
            parts.append(f"[{kind}: {block.mime_type}, {len(block.data) * 3 // 4} bytes, not shown]")
    if not parts and result.structured_content is not None:
        parts.append(json.dumps(result.structured_content, ensure_ascii=False))
    return "\n".join(parts) if parts else "(no content)"


# --- connections ------------------------------------------------------------------------------


@dataclass
class McpTool:
    server: str
    name: str  # the server's own name for it
    api_name: str
    description: str
    input_schema: dict[str, Any]

    def definition(self) -> dict[str, Any]:
        schema = dict(self.input_schema or {})
        schema.setdefault("type", "object")
        return {
            "name": self.api_name,
            "description": f"[{self.server}] {self.description}".strip(),
            "input_schema": schema,
        }


class _Connection:
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
                logger.warning("MCP server %s stopped unexpectedly: %s", self.spec.name, _reason(exc, self))
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


def _reason(exc: BaseException, connection: _Connection) -> str:
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


class McpServers:
    """The running MCP servers of one orchestrator run; an async context manager."""

    def __init__(
        self,
        specs: list[McpServerSpec],
        *,
        cwd: Path | None = None,
        start_timeout: float = 30,
        call_timeout: float = 300,
        verbose: bool = False,
    ):
        names = [spec.name for spec in specs]
        duplicates = {name for name in names if names.count(name) > 1}
        if duplicates:
            raise McpConfigError(f"MCP server defined twice: {', '.join(sorted(duplicates))}")
        self.specs = specs
        self.cwd = cwd
        self.start_timeout = start_timeout
        self.call_timeout = call_timeout
        self.verbose = verbose
        self.connections: dict[str, _Connection] = {}
        self.tools: dict[str, McpTool] = {}

    async def __aenter__(self) -> McpServers:
        try:
            await self.start()
        except BaseException:
            await self.close()
            raise
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    async def start(self) -> None:
        for spec in self.specs:
            connection = _Connection(spec, cwd=self.cwd, verbose=self.verbose, call_timeout=self.call_timeout)
            connection.task = asyncio.create_task(connection.serve(), name=f"mcp:{spec.name}")
            self.connections[spec.name] = connection
        for name, connection in self.connections.items():
            try:
                await asyncio.wait_for(asyncio.shield(connection.ready), self.start_timeout)
            except TimeoutError as exc:
                raise McpStartError(f"MCP server {name!r} failed to start: {_reason(exc, connection)}") from None
            except Exception as exc:  # noqa: BLE001 - every start failure becomes one readable line
                raise McpStartError(f"MCP server {name!r} failed to start: {_reason(exc, connection)}") from None
            for tool in connection.tools:
                api_name = namespaced(name, tool.name, set(self.tools))
                self.tools[api_name] = McpTool(name, tool.name, api_name, tool.description or "", tool.input_schema)
            logger.info("MCP server %s started (%s): %d tools", name, connection.spec.describe(), len(connection.tools))

    async def close(self) -> None:
        connections, self.connections = list(self.connections.values()), {}
        for connection in connections:
            connection.stop.set()
            if not connection.ready.done() and connection.task is not None:
                connection.task.cancel()  # still in the handshake: nothing to wind down politely
            elif connection.ready.done() and not connection.ready.cancelled():
                connection.ready.exception()  # retrieved: a failure was reported already
        tasks = [c.task for c in connections if c.task is not None]
        if tasks:
            _, pending = await asyncio.wait(tasks, timeout=10)
            for task in pending:
                task.cancel()
            if pending:
                await asyncio.wait(pending, timeout=5)
        for connection in connections:
            if connection.errlog is not None:
                connection.errlog.close()

    def definitions(self) -> list[dict[str, Any]]:
        return [tool.definition() for tool in self.tools.values()]

    def knows(self, api_name: str) -> bool:
        return api_name in self.tools

    async def run(self, call: ToolCall) -> ToolOutcome:
        tool = self.tools.get(call.name)
        if tool is None:
            return ToolOutcome(call.id, f"Unknown tool: {call.name}", is_error=True)
        connection = self.connections.get(tool.server)
        if connection is None or connection.client is None:
            return ToolOutcome(call.id, f"MCP server {tool.server!r} is not running.", is_error=True)
        try:
            result = await connection.client.call_tool(tool.name, call.input or {})
        except Exception as exc:  # noqa: BLE001 - a failed call is an error the model reads
            return ToolOutcome(call.id, f"MCP server {tool.server!r} failed: {_reason(exc, connection)}", is_error=True)
        return ToolOutcome(call.id, result_text(result), is_error=bool(result.is_error))
