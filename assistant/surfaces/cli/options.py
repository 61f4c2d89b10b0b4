"""The orchestrator's options, its error, and the defaults of a run without an agent."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from assistant.engine import ToolCall
from config.errors import CodedError


DEFAULT_SYSTEM_PROMPT = (
    "You are an autonomous assistant working in the directory {workspace}. Use the tools to inspect and "
    "change files there and to run commands; paths are relative to that directory. Be concise."
)
BUILTIN_AGENT_SLUG = "orchestrator"
SYSTEM_USER_EMAIL = "orchestrator@localhost"
TOOL_OUTPUT_PREVIEW = 500  # characters of a tool result in a `tool_result` event (as the websocket sends)


class OrchestratorError(CodedError):
    """A reason the run could not start or finish, in one line."""


@dataclass
class OrchestratorOptions:
    message: str
    agent_slug: str | None = None
    system_prompt: str | None = None
    workspace: str | None = None
    mcp_config: str | None = None
    allowed_tools: list[str] | None = None
    model: str | None = None
    max_turns: int | None = None
    resume_session_id: str | None = None
    user_email: str | None = None
    verbose: bool = False
    # Tool calls the agent's policy holds for approval (issue 28): "ask" the operator (`ask(call)`
    # answers True to allow), "allow" them all (--approve), or "deny" them (no terminal to ask).
    approve: str = "deny"
    ask: Callable[[ToolCall], bool] | None = None
