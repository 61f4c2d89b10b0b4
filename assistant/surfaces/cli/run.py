"""The run: the engine's agent loop, its events to the sink, its messages stored, approvals decided on the spot."""

from __future__ import annotations

import asyncio
import functools
import json
import time
from pathlib import Path
from typing import Any

from asgiref.sync import sync_to_async
from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import connections
from django.utils import timezone

import observability
from assistant.engine import (
    agent_loop,
    ApprovalGate,
    LoopFinished,
    LoopRequest,
    ModelCallFinished,
    ModelCallStarted,
    TextDelta,
    ThinkingDelta,
    ToolCall,
    ToolOutcome,
    ToolResults,
    ToolUseRequested,
    Usage,
    UsageReported,
)
from assistant.llm import LLMError
from assistant.tools.mcp import load_mcp_config, McpConfigError, McpServers, McpStartError
from assistant.tools.toolset import approval_required_for
from assistant.tools.workspace import BuiltinTools, Workspace

from .options import OrchestratorError, OrchestratorOptions, TOOL_OUTPUT_PREVIEW
from .sinks import _shorten, EventSink
from .storage import _audit_tool_calls, _budget_before_call, _store_answer, _store_results, _store_unfinished
from .prepare import _prepare, OrchestratorTools, Prepared


# --- the run ----------------------------------------------------------------------------------


async def run_orchestrator(options: OrchestratorOptions, sink: EventSink) -> LoopFinished:
    if not options.message.strip():
        raise OrchestratorError("empty_message", "the message is empty")
    workspace = _workspace(options.workspace)
    try:
        file_specs = load_mcp_config(options.mcp_config) if options.mcp_config else []
    except McpConfigError as exc:
        raise OrchestratorError("bad_mcp_config", str(exc)) from None
    db = sync_to_async(_prepare_checked, thread_sensitive=True)
    try:
        prepared = await db(options, workspace, file_specs)
        return await _run(prepared, workspace, options, sink)
    finally:
        await sync_to_async(connections.close_all, thread_sensitive=True)()


def _prepare_checked(options, workspace, file_specs) -> Prepared:
    try:
        return _prepare(options, workspace, file_specs)
    except ValidationError as exc:
        raise OrchestratorError("invalid", "; ".join(_messages(exc))) from None


def _messages(exc: ValidationError) -> list[str]:
    if hasattr(exc, "error_dict"):
        return [f"{field}: {message}" for field, errors in exc.message_dict.items() for message in errors]
    return list(exc.messages)


def _workspace(path: str | None) -> Workspace:
    root = path or settings.AGENTS_DIR or str(Path.cwd())
    try:
        return Workspace(root)
    except ValueError as exc:
        raise OrchestratorError("bad_workspace", str(exc)) from None


async def _run(prepared: Prepared, workspace: Workspace, options: OrchestratorOptions, sink: EventSink) -> LoopFinished:
    session = prepared.session
    sink.session_id = session.pk
    decisions: dict[str, Any] = {}  # tool call id → its approval, for the audit
    store = lambda fn, *args, **kwargs: sync_to_async(fn, thread_sensitive=True)(session, *args, **kwargs)
    builtin = BuiltinTools(
        workspace,
        shell_timeout=settings.ORCHESTRATOR_SHELL_TIMEOUT,
        output_limit=settings.ORCHESTRATOR_OUTPUT_LIMIT,
        shell_env=settings.ORCHESTRATOR_SHELL_ENV,
    )
    try:
        mcp = McpServers(
            prepared.mcp_specs,
            cwd=workspace.root,
            start_timeout=settings.ORCHESTRATOR_MCP_START_TIMEOUT,
            call_timeout=settings.ORCHESTRATOR_MCP_CALL_TIMEOUT,
            verbose=options.verbose,
        )
    except McpConfigError as exc:
        raise OrchestratorError("bad_mcp_config", str(exc)) from None
    try:
        async with mcp:
            tools = OrchestratorTools(builtin, mcp, prepared.allowed_tools, strict=prepared.strict_allowed)
            sink.emit(
                "session",
                agent=prepared.agent.slug,
                title=session.title,
                model=prepared.model.model,
                resumed=prepared.resumed,
                workspace=str(workspace.root),
                tools=sorted(tools.names),
            )
            request = LoopRequest(
                model=prepared.model,
                messages=prepared.history,
                system=prepared.system,
                tools=tools,
                max_turns=prepared.max_turns,
                before_model_call=functools.partial(_budget_before_call, session),
                approval=_approval_gate(prepared, options, sink, decisions),
            )
            return await _observed_loop(request, sink, store, decisions, prepared.agent.slug, session.pk)
    except McpStartError as exc:
        raise OrchestratorError("mcp_start_failed", str(exc)) from None


def _approval_gate(
    prepared: Prepared, options: OrchestratorOptions, sink: EventSink, decisions: dict[str, Any]
) -> ApprovalGate | None:
    """The agent's approval policy, decided on the spot: by the operator at the terminal, by --approve,
    or denied when there is no one to ask. Each decision is an `approval_decision` event."""
    required = approval_required_for(prepared.approval_required)
    if required is None:
        return None

    async def decide(call: ToolCall) -> ToolOutcome | None:
        if options.approve == "allow":
            allowed, by = True, "--approve"
        elif options.approve == "ask" and options.ask is not None:
            allowed, by = await asyncio.to_thread(options.ask, call), "operator"
        else:
            allowed, by = False, "no one to ask"
        sink.emit("approval_decision", tool_use_id=call.id, name=call.name,
                  decision="allowed" if allowed else "denied", decided_by=by)  # fmt: skip
        from audit.services import ToolApproval

        decisions[call.id] = ToolApproval("allow" if allowed else "deny", None, f"cli: {by}"[:254], timezone.now())
        if allowed:
            return None
        why = "the operator denied it" if by == "operator" else (
            "it needs approval and this run could not ask for it (run interactively, or pass --approve)"
        )
        return ToolOutcome(call.id, f"This tool call was not run: {why}.", is_error=True)

    return ApprovalGate(required, decide)


async def _observed_loop(request: LoopRequest, sink: EventSink, store, decisions: dict[str, Any], agent_slug: str,
                         session_id: int) -> LoopFinished:  # fmt: skip
    """`_loop`, counted and traced as a turn (transport `cli`)."""
    observability.bind_log_context(session_id=session_id)
    started = time.monotonic()
    status = "error"
    observability.turn_started()
    try:
        with observability.turn_span(agent_slug, session_id):
            finished = await _loop(request, sink, store, decisions)
        status = "awaiting_approval" if finished.stop_reason == "approval_required" else "complete"
        return finished
    except (asyncio.CancelledError, KeyboardInterrupt):
        status = "stopped"
        raise
    finally:
        observability.turn_finished("cli", status, time.monotonic() - started)


async def _loop(request: LoopRequest, sink: EventSink, store, decisions: dict[str, Any]) -> LoopFinished:
    partial: list[str] = []
    pending: dict[str, ToolCall] = {}
    names: dict[str, str] = {}
    call_usage: Usage | None = None  # the model call in progress, as reported so far
    try:
        async for event in agent_loop(request):
            if isinstance(event, ModelCallStarted):
                partial = []
                call_usage = Usage()
            elif isinstance(event, UsageReported):
                call_usage = event.usage
            elif isinstance(event, TextDelta):
                partial.append(event.text)
                sink.emit("text_delta", text=event.text)
            elif isinstance(event, ThinkingDelta):
                sink.emit("thinking_delta", text=event.text)
            elif isinstance(event, ToolUseRequested):
                names[event.call.id] = event.call.name
                sink.emit("tool_use", id=event.call.id, name=event.call.name, input=event.call.input)
            elif isinstance(event, ModelCallFinished):
                partial = []
                call_usage = None
                await store(_store_answer, event)
                pending = {
                    b["id"]: ToolCall(b["id"], b["name"], b.get("input") or {})
                    for b in event.content
                    if b["type"] == "tool_use"
                }
                if event.stop_reason != "tool_use":
                    pending = {}
            elif isinstance(event, ToolResults):
                await store(_store_results, event.results)
                unknown = ToolCall("", "", {})
                await store(_audit_tool_calls, [(pending.get(r.tool_use_id, unknown), r) for r in event.results], decisions)
                pending = {}
                for result in event.results:
                    output = result.content if isinstance(result.content, str) else json.dumps(result.content)
                    sink.emit(
                        "tool_result",
                        id=result.tool_use_id,
                        name=names.get(result.tool_use_id, ""),
                        is_error=result.is_error,
                        output=_shorten(output, TOOL_OUTPUT_PREVIEW),
                    )
            elif isinstance(event, LoopFinished):
                sink.emit(
                    "result",
                    status="complete",
                    stop_reason=event.stop_reason,
                    usage=event.usage.as_dict(),
                    turns=event.turns,
                    duration_ms=event.duration_ms,
                )
                return event
    except LLMError as exc:
        await store(
            _store_unfinished,
            text="".join(partial),
            status="error",
            model=request.model.model,
            code=exc.code,
            message=exc.message,
            usage=call_usage,
        )
        raise OrchestratorError(exc.code, exc.message) from None
    except (asyncio.CancelledError, KeyboardInterrupt):
        await asyncio.shield(
            store(
                _store_unfinished,
                text="".join(partial),
                status="stopped",
                model=request.model.model,
                pending_calls=list(pending.values()),
                usage=call_usage,
            )
        )
        raise
    raise OrchestratorError("internal", "the agent loop ended without a result")  # pragma: no cover
