"""MCP servers for agents' turns and the orchestrator: the servers' tools offered to the model,
calls, results. A server's tools reach the model as `<server>__<tool>`.

- `mcp_config`: server definitions (McpServerSpec) and reading them from a config file
- `mcp_connection`: one connection to a server, in a task of its own
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from assistant.engine import ToolCall, ToolOutcome
from assistant.tools.mcp_config import (
    McpConfigError,
    McpServerSpec,
    McpStartError,
    load_mcp_config,
    parse_mcp_config,
    safe_url,
    server_spec,
)
from assistant.tools.mcp_connection import McpConnection, close_connections, failure_reason, server_answered

TOOL_NAME = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")
SEPARATOR = "__"


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


# --- the servers of one run ----------------------------------------------------------------


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


class McpServers:
    """The running MCP servers of one run or turn; an async context manager.

    Without `pool` (the CLI, an integration's check) it starts its servers and closes them on the way
    out. With one (server-side turns: `mcp_pool.mcp_pool()`), it takes warm connections from the pool,
    starting those missing, and gives them back on the way out."""

    def __init__(
        self,
        specs: list[McpServerSpec],
        *,
        cwd: Path | None = None,
        start_timeout: float = 30,
        call_timeout: float = 300,
        verbose: bool = False,
        pool: Any = None,
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
        self.pool = pool
        self.connections: dict[str, McpConnection] = {}
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
        if self.pool is not None:
            self.connections = await self.pool.take(
                self.specs, cwd=self.cwd, start_timeout=self.start_timeout, call_timeout=self.call_timeout
            )
        else:
            for spec in self.specs:
                connection = McpConnection(spec, cwd=self.cwd, verbose=self.verbose, call_timeout=self.call_timeout)
                connection.start()
                self.connections[spec.name] = connection
            for name, connection in self.connections.items():
                await connection.wait_ready(name, self.start_timeout)
        for name, connection in self.connections.items():
            for tool in connection.tools:
                api_name = namespaced(name, tool.name, set(self.tools))
                self.tools[api_name] = McpTool(name, tool.name, api_name, tool.description or "", tool.input_schema)

    async def close(self) -> None:
        connections, self.connections = list(self.connections.values()), {}
        if self.pool is not None:
            self.pool.give_back(connections)
        else:
            await close_connections(connections)

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
        except asyncio.CancelledError:
            connection.spoiled = True  # abandoned (a stop, the tool timeout): the server may still be at it
            raise
        except Exception as exc:  # noqa: BLE001 - a failed call is an error the model reads
            if not server_answered(exc):
                connection.spoiled = True  # no answer (it died, the connection dropped, it timed out)
            reason = failure_reason(exc, connection)
            return ToolOutcome(call.id, f"MCP server {tool.server!r} failed: {reason}", is_error=True)
        return ToolOutcome(call.id, result_text(result), is_error=bool(result.is_error))


__all__ = [
    "McpConfigError",
    "McpServerSpec",
    "McpServers",
    "McpStartError",
    "McpTool",
    "load_mcp_config",
    "namespaced",
    "parse_mcp_config",
    "result_text",
    "safe_url",
    "server_spec",
]
