"""MCP server definitions: what Conduit knows of a server before starting it, and reading them.

A server is described as other MCP clients describe it: stdio (`command`, `args`, `env`) or remote
(`type: "sse" | "http"`, `url`, `headers`). Secrets belong in a stdio server's `env` (never in `args`,
which any local user can read in the process list) or in a remote server's `headers`; neither `env`
nor `headers` is ever logged.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit


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
