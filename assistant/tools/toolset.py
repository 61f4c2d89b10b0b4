"""The tools an agent's turn runs with, for every surface (websocket, SSE, CLI).

`tool_setup_for(agent, ...)` decides, from the database and within the trust rules, what a turn may
use: the MCP servers of the agent's active integrations (the organization's as staff defined them,
users' own remote ones through the egress policy, never a user's stdio server), credentials
injected; the agent's `allowed_tools`; and, for organization agents staff gave workspace tools, the
file tools in the session's workspace plus `run_shell` in the sandbox where it can run.

`open_agent_tools(setup)` takes the turn's MCP servers from the event loop's pool of warm
connections (tools/mcp_pool.py), starting those missing, and gives them back however the turn ends
(an async context manager); it gives the engine's ToolRunner: MCP and built-in tools filtered by
`allowed_tools`, every call bounded by a timeout whose expiry is an error result the model reads.
"""

from __future__ import annotations

import asyncio
import fnmatch
import logging
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from django.conf import settings

from assistant.engine import ToolCall, ToolOutcome, ToolRunner
from assistant.tools.mcp import McpConfigError, McpServers, McpServerSpec, parse_mcp_config
from assistant.tools.mcp_pool import mcp_pool
from assistant.tools.sandbox import SandboxLimits, sandbox_available
from assistant.tools.workspace import ALIASES, FILE_TOOLS, BuiltinTools, Workspace

logger = logging.getLogger(__name__)


class UnknownAllowedTools(ValueError):
    """Allowed-tool patterns that match none of the tools (an error where the caller is strict)."""

    def __init__(self, unmatched: list[str], available: list[str]):
        self.unmatched, self.available = unmatched, available
        super().__init__(f"unknown tools: {', '.join(unmatched)} (available: {', '.join(available)})")


def allowed_patterns(entries: list[str]) -> list[str]:
    """`allowed_tools` entries as fnmatch patterns over API tool names; Claude Code's names too."""
    patterns = []
    for entry in entries:
        entry = entry.strip()
        if not entry:
            continue
        if entry in ALIASES:
            entry = ALIASES[entry]
        elif entry.startswith("mcp__"):  # Claude Code's naming: mcp__server__tool, mcp__server
            rest = entry[len("mcp__") :]
            entry = rest if "__" in rest else f"{rest}__*"
        patterns.append(entry)
    return patterns


def approval_required_for(patterns: tuple[str, ...] | list[str]) -> Callable[[ToolCall], bool] | None:
    """The approval policy's test of a call (None: nothing needs approval). Patterns as in
    `allowed_tools`; "*" holds every call."""
    normalized = allowed_patterns(list(patterns))
    if not normalized:
        return None
    return lambda call: any(fnmatch.fnmatchcase(call.name, pattern) for pattern in normalized)


class AgentTools:
    """The built-in tools and the MCP servers' tools, restricted to the allowed ones; a ToolRunner.

    `timeout`: seconds a call may take; past it the call is cancelled and the model reads an error."""

    def __init__(
        self,
        builtin: BuiltinTools | None,
        mcp: McpServers,
        allowed: list[str] | None,
        *,
        strict: bool = False,
        timeout: float | None = None,
    ):
        self.builtin = builtin
        self.mcp = mcp
        self.timeout = timeout
        candidates = (builtin.definitions() if builtin is not None else []) + mcp.definitions()
        if allowed:
            patterns = allowed_patterns(allowed)
            unmatched = [p for p in patterns if not any(fnmatch.fnmatchcase(d["name"], p) for d in candidates)]
            if unmatched and strict:
                raise UnknownAllowedTools(unmatched, [d["name"] for d in candidates])
            if unmatched:
                logger.info("Allowed tools that match no tool are ignored: %s", ", ".join(unmatched))
            candidates = [d for d in candidates if any(fnmatch.fnmatchcase(d["name"], p) for p in patterns)]
        self._definitions = candidates
        self.names = {d["name"] for d in candidates}

    def definitions(self) -> list[dict[str, Any]]:
        return self._definitions

    async def run(self, call: ToolCall) -> ToolOutcome:
        if call.name not in self.names:
            return ToolOutcome(
                call.id, f"Unknown tool: {call.name}. Available tools: {', '.join(sorted(self.names))}.", is_error=True
            )
        runner: ToolRunner | None = self.mcp if self.mcp.knows(call.name) else self.builtin
        if runner is None:  # pragma: no cover - names come from these two
            return ToolOutcome(call.id, f"Unknown tool: {call.name}", is_error=True)
        if self.timeout is None:
            return await runner.run(call)
        try:
            return await asyncio.wait_for(runner.run(call), self.timeout)
        except TimeoutError:
            logger.info("Tool %s timed out after %s s", call.name, self.timeout)
            return ToolOutcome(
                call.id, f"The tool {call.name} did not finish within {self.timeout:g} s and was cancelled.",
                is_error=True,
            )  # fmt: skip
        except Exception:  # a tool runner's own bug: the model reads an error, the turn goes on
            logger.exception("Tool %s failed", call.name)
            return ToolOutcome(call.id, f"The tool {call.name} failed because of an internal error.", is_error=True)


# --- what a turn may use (sync: reads the database) ----------------------------------------------


@dataclass(frozen=True)
class ToolSetup:
    """The tools a turn gets, decided when it is planned. Holds credentials: never log it."""

    mcp_specs: tuple[McpServerSpec, ...] = ()
    allowed_tools: tuple[str, ...] = ()
    workspace: Path | None = None  # the file tools' directory; None: no built-in tools
    shell: bool = False  # run_shell, in the sandbox

    @property
    def empty(self) -> bool:
        return not self.mcp_specs and self.workspace is None


def integration_specs(agent) -> list[McpServerSpec]:
    """The agent's integrations that define MCP servers, credentials included (never logged).
    Servers of users' integrations connect through the egress policy, and a user's stdio server
    (a command on this machine) never runs, even one stored before the trust rule. McpConfigError
    for a definition that can't be used."""
    from agents.selectors import agent_mcp_servers

    source = f"agent {agent.slug!r} integrations"
    users = parse_mcp_config(agent_mcp_servers(agent=agent, users_own=True), source=source, guard_egress=True)
    refused = [spec.name for spec in users if spec.transport == "stdio"]
    if refused:
        logger.warning("Agent %s: users' stdio MCP servers are never run: %s", agent.slug, ", ".join(refused))
    return [
        *parse_mcp_config(agent_mcp_servers(agent=agent), source=source),
        *(spec for spec in users if spec.transport != "stdio"),
    ]


def workspace_tools_for(agent) -> tuple[bool, bool]:
    """(file tools, shell) for a server-side turn of `agent`: only organization agents staff gave
    them; the shell only where the sandbox runs."""
    from agents.models import AIAgent
    from agents.selectors import agent_workspace_tools

    mode = agent_workspace_tools(agent=agent)
    files = mode in {AIAgent.WorkspaceTools.FILES, AIAgent.WorkspaceTools.FILES_AND_SHELL}
    shell = mode == AIAgent.WorkspaceTools.FILES_AND_SHELL and sandbox_available()
    return files, shell


def tool_setup_for(agent, *, session_id: int) -> ToolSetup:
    """What a server-side turn of `agent` in session `session_id` may use. McpConfigError for an
    integration whose server definition can't be used. Creates the session's workspace if needed."""
    from agents.workspaces import workspace_ensure

    files, shell = workspace_tools_for(agent)
    return ToolSetup(
        mcp_specs=tuple(integration_specs(agent)),
        allowed_tools=tuple(agent.allowed_tools or ()),
        workspace=workspace_ensure(session_id) if files else None,
        shell=shell,
    )


# --- running them (async) ------------------------------------------------------------------------


@asynccontextmanager
async def open_agent_tools(setup: ToolSetup) -> AsyncIterator[AgentTools]:
    """The turn's ToolRunner with its MCP servers running (warm ones from the pool); they go back to
    the pool on the way out, however the turn ends. McpStartError when a server does not start."""
    builtin = None
    if setup.workspace is not None:
        builtin = BuiltinTools(
            Workspace(setup.workspace),
            shell_timeout=settings.SANDBOX_TIMEOUT,
            output_limit=settings.ORCHESTRATOR_OUTPUT_LIMIT,
            shell_env={},
            names=FILE_TOOLS | ({"run_shell"} if setup.shell else set()),
            sandbox=SandboxLimits.from_settings(),
        )
    mcp = McpServers(
        list(setup.mcp_specs),
        cwd=setup.workspace,
        start_timeout=settings.ORCHESTRATOR_MCP_START_TIMEOUT,
        call_timeout=settings.ORCHESTRATOR_MCP_CALL_TIMEOUT,
        pool=mcp_pool(),
    )
    async with mcp:
        yield AgentTools(builtin, mcp, list(setup.allowed_tools) or None, timeout=settings.ASSISTANT_TOOL_TIMEOUT)


__all__ = [
    "AgentTools",
    "McpConfigError",
    "ToolSetup",
    "UnknownAllowedTools",
    "allowed_patterns",
    "approval_required_for",
    "integration_specs",
    "open_agent_tools",
    "tool_setup_for",
]
