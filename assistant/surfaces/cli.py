"""The orchestrator: one agent turn from the command line, with workspace tools and MCP servers.

`run_orchestrator(options, sink)` resolves the agent, the session, the model and the tools, runs the
engine's agent loop, stores every message as it completes (the user's prompt, each model answer,
each batch of tool results) and sends the turn's events to a sink (readable text or JSON lines).
Failures that stop the run are `OrchestratorError(code, message)`, one line each.
"""

from __future__ import annotations

import asyncio
import functools
import json
import logging
import time
from dataclasses import dataclass, field
from collections.abc import Callable
from pathlib import Path
from typing import Any, TextIO

from asgiref.sync import sync_to_async
from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import connections, transaction
from django.utils import timezone

import observability
from assistant.engine import (
    LoopFinished,
    ApprovalGate,
    LoopRequest,
    ModelCallFinished,
    ModelCallStarted,
    ModelSettings,
    TextDelta,
    ThinkingDelta,
    ToolCall,
    ToolOutcome,
    ToolResults,
    ToolUseRequested,
    Usage,
    UsageReported,
    agent_loop,
)
from assistant.llm import LLMError
from assistant.llm.types import NO_KEY_HINT
from assistant.tools.mcp import (
    McpConfigError,
    McpServers,
    McpServerSpec,
    McpStartError,
    load_mcp_config,
)
from assistant.runs.catalog import approval_patterns
from assistant.tools.toolset import AgentTools, UnknownAllowedTools, approval_required_for, integration_specs
from assistant.tools.workspace import BuiltinTools, Workspace
from config.errors import CodedError

logger = logging.getLogger(__name__)

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


# --- output -----------------------------------------------------------------------------------


class EventSink:
    """Numbers the run's events and hands them to `write`. One vocabulary for every transport:
    session, text_delta, thinking_delta, tool_use, tool_result, result, error."""

    def __init__(self) -> None:
        self.session_id: int | None = None
        self.seq = 0

    def emit(self, kind: str, **fields: Any) -> None:
        self.seq += 1
        self.write({"type": kind, "session_id": self.session_id, "seq": self.seq, **fields})

    def write(self, event: dict[str, Any]) -> None:
        raise NotImplementedError


class JsonLinesSink(EventSink):
    def __init__(self, stream: TextIO):
        super().__init__()
        self.stream = stream

    def write(self, event: dict[str, Any]) -> None:
        self.stream.write(json.dumps(event, ensure_ascii=False) + "\n")
        self.stream.flush()


class TextSink(EventSink):
    """Assistant text as it streams, `→ tool(args)` and `← ok: first line` for tools, a summary."""

    def __init__(self, stream: TextIO):
        super().__init__()
        self.stream = stream
        self.at_line_start = True

    def _out(self, text: str) -> None:
        if text:
            self.stream.write(text)
            self.stream.flush()
            self.at_line_start = text.endswith("\n")

    def _line(self, text: str) -> None:
        self._out(("" if self.at_line_start else "\n") + text + "\n")

    def write(self, event: dict[str, Any]) -> None:
        kind = event["type"]
        if kind == "text_delta":
            self._out(event["text"])
        elif kind == "tool_use":
            self._line(f"→ {event['name']}({_summary(event['input'])})")
        elif kind == "tool_result":
            first = next((line.strip() for line in event["output"].splitlines() if line.strip()), "")
            more = "…" if len(event["output"].strip()) > len(first) else ""
            self._line(f"← {'error' if event['is_error'] else 'ok'}: {_shorten(first, 100)}{more}")
        elif kind == "approval_decision":
            self._line(f"✋ {event['name']}: {event['decision']} ({event['decided_by']})")
        elif kind == "result":
            usage = event["usage"]
            self._line(
                f"[{event['stop_reason']} · {event['turns']} turn{'s' if event['turns'] != 1 else ''} · "
                f"{usage['input_tokens']} in / {usage['output_tokens']} out tokens · {event['duration_ms'] / 1000:.1f} s]"
            )
            self._line(f"session: {event['session_id']}")


def _shorten(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _summary(arguments: dict[str, Any]) -> str:
    parts = []
    for key, value in (arguments or {}).items():
        shown = (
            json.dumps(value, ensure_ascii=False)
            if not isinstance(value, str)
            else json.dumps(_shorten(value, 60), ensure_ascii=False)
        )
        parts.append(f"{key}={shown}")
    return _shorten(", ".join(parts), 120)


# --- tools ------------------------------------------------------------------------------------


class OrchestratorTools(AgentTools):
    """The CLI's tools: every built-in tool and the MCP servers' tools, restricted to the allowed ones;
    with `strict`, an allowed tool that matches nothing is an error."""

    def __init__(self, builtin: BuiltinTools, mcp: McpServers, allowed: list[str] | None, *, strict: bool):
        try:
            super().__init__(builtin, mcp, allowed, strict=strict)
        except UnknownAllowedTools as exc:
            raise OrchestratorError(
                "bad_allowed_tools",
                f"--allowed-tools names unknown tools: {', '.join(exc.unmatched)} (available: {', '.join(exc.available)})",
            ) from None


# --- database ---------------------------------------------------------------------------------


@dataclass
class Prepared:
    session: Any
    agent: Any
    model: ModelSettings
    system: str
    max_turns: int
    allowed_tools: list[str] | None
    strict_allowed: bool
    mcp_specs: list[McpServerSpec]
    history: list[dict[str, Any]] = field(default_factory=list)
    resumed: bool = False
    approval_required: tuple[str, ...] = ()


# The settings an LLM config's empty fields fall back to, by provider.
_PROVIDER_SETTINGS = {"anthropic": "ANTHROPIC", "openai": "OPENAI"}


def _prepare(options: OrchestratorOptions, workspace: Workspace, file_specs: list[McpServerSpec]) -> Prepared:
    """Everything the database says about this run; stores the user's message."""
    from agents.models import UserAgentSession
    from agents.selectors import agent_unusable_reason, llm_config_for_agent, organization_agent_get
    from agents.services import agent_system_prompt, message_append, session_create
    from assistant.runs.history import api_messages

    session = None
    if options.resume_session_id:
        session = (
            UserAgentSession.objects.select_related("agent", "owner")
            .filter(pk=_session_pk(options.resume_session_id))
            .first()
        )
        if session is None:
            raise OrchestratorError("unknown_session", f"no session with id {options.resume_session_id}")
        if options.agent_slug and options.agent_slug != session.agent.slug:
            raise OrchestratorError(
                "agent_mismatch",
                f"session {session.pk} belongs to agent {session.agent.slug!r}, not {options.agent_slug!r}",
            )
        if options.user_email and session.owner.email.lower() != options.user_email.lower():
            raise OrchestratorError("unknown_session", f"session {session.pk} is not {options.user_email}'s")
        agent = session.agent
        if agent.owner_id is not None:
            # An operator's run executes tools with the operator's rights and key: never a user's agent.
            raise OrchestratorError(
                "unknown_session",
                f"session {session.pk}'s agent {agent.slug!r} is not an organization agent "
                "(the CLI runs organization agents only)",
            )
    elif options.agent_slug:
        agent = organization_agent_get(slug=options.agent_slug)
        if agent is None:
            raise OrchestratorError("unknown_agent", f"no organization agent with slug {options.agent_slug!r}")
        if not agent.is_active:
            raise OrchestratorError("unknown_agent", f"agent {options.agent_slug!r} is not active")
    else:
        agent = _builtin_agent()
    unusable = agent_unusable_reason(agent=agent)
    if unusable:
        raise OrchestratorError("agent_unavailable", f"agent {agent.slug!r}: {unusable}")

    owner = session.owner if session is not None else _owner(options)
    _check_budget(owner.pk)
    # An organization agent's config, else the organization's default: never the session owner's own
    # default config, whose endpoint that user chose.
    config = llm_config_for_agent(agent)
    model = ModelSettings(
        model=options.model or config.model,
        api_key=config.api_key,
        base_url=config.base_url or None,
        max_tokens=config.max_tokens,
        guard_egress=config.user_endpoint,
        provider=config.provider,
        temperature=config.temperature,
    )
    if not model.api_key:
        raise OrchestratorError(
            "not_configured",
            f"no API key for the model: set {_PROVIDER_SETTINGS[model.provider]}_API_KEY or give the agent an LLM "
            "config with a key. " + NO_KEY_HINT,
        )
    if not model.model:
        raise OrchestratorError(
            "not_configured",
            f"no model: set {_PROVIDER_SETTINGS[model.provider]}_MODEL, pass --model or give the agent an LLM config",
        )

    variables = {"workspace": str(workspace.root), **(session.custom_properties if session is not None else {})}
    if options.system_prompt is not None:
        system = options.system_prompt
    elif agent.slug == BUILTIN_AGENT_SLUG and not (agent.system_prompt_id or agent.system_prompt_text):
        system = DEFAULT_SYSTEM_PROMPT.format(workspace=workspace.root)
    else:
        system = agent_system_prompt(agent=agent, variables=variables)

    names = {spec.name for spec in file_specs}
    agent_specs = _with_connections(agent, owner, [spec for spec in _integration_specs(agent) if spec.name not in names])

    if session is None:
        title = _shorten(options.message.strip().splitlines()[0], 80)
        if agent.slug == BUILTIN_AGENT_SLUG and not agent.is_active:
            # session_create refuses inactive agents (they are retired for users); the built-in
            # one is inactive only to stay out of the chat's agent list.
            session = UserAgentSession.objects.create(owner=owner, agent=agent, title=title)
        else:
            session = session_create(owner=owner, agent=agent, title=title)
    message_append(session=session, role="user", content=[{"type": "text", "text": options.message}])
    history = api_messages(session.messages.order_by("seq"))

    allowed = options.allowed_tools if options.allowed_tools is not None else (list(agent.allowed_tools or []) or None)
    return Prepared(
        session=session,
        agent=agent,
        model=model,
        system=system,
        max_turns=options.max_turns or agent.max_turns or settings.ORCHESTRATOR_DEFAULT_MAX_TURNS,
        allowed_tools=allowed,
        strict_allowed=options.allowed_tools is not None,
        approval_required=approval_patterns(agent) if agent.pk else (),
        mcp_specs=file_specs + agent_specs,
        history=history,
        resumed=bool(options.resume_session_id),
    )


def _with_connections(agent, owner, specs: list[McpServerSpec]) -> list[McpServerSpec]:
    """The operator's own tokens for integrations that need each user's connection (issue 29)."""
    from connections.turns import ConnectionRequired, personal_servers, specs_for_user_now

    personal = tuple(p for p in personal_servers(agent.integrations.all()) if p.server_name in {s.name for s in specs})
    try:
        return list(specs_for_user_now(user_id=owner.pk, specs=tuple(specs), personal=personal))
    except ConnectionRequired as missing:
        raise OrchestratorError(
            "connection_required",
            f"{owner.email} has no usable connection to the integration “{missing.integration_name}”: run "
            f"`manage.py connect {missing.integration_id} --user {owner.email}`",
        ) from None


def _session_pk(value: str) -> int:
    try:
        return int(value)
    except ValueError:
        raise OrchestratorError("unknown_session", f"no session with id {value}") from None


def _builtin_agent():
    from agents.models import AIAgent

    agent, _ = AIAgent.objects.get_or_create(
        slug=BUILTIN_AGENT_SLUG,
        owner=None,  # the organization's: a user's agent of the same slug is never it
        defaults={
            "name": "Orchestrator (command line)",
            "description": "Runs of `manage.py run_orchestrator` without --agent. Its system prompt is the CLI's default.",
            "category": "orchestrator",
            "max_turns": settings.ORCHESTRATOR_DEFAULT_MAX_TURNS,
            "is_active": False,  # not offered in the chat: it exists so CLI sessions have an agent
        },
    )
    return agent


def _owner(options: OrchestratorOptions):
    from django.contrib.auth import get_user_model

    User = get_user_model()
    if options.user_email:
        user = User.objects.filter(email__iexact=options.user_email, is_active=True).first()
        if user is None:
            raise OrchestratorError("unknown_user", f"no active user with email {options.user_email}")
        return user
    user = User.objects.filter(is_superuser=True, is_active=True).order_by("pk").first()
    if user is None:
        # A fresh installation: a system user owns CLI sessions. It has no usable password.
        user = User.objects.filter(email__iexact=SYSTEM_USER_EMAIL).first() or User.objects.create_user(
            email=SYSTEM_USER_EMAIL, password=None, name="Orchestrator (command line)"
        )
    return user


def _integration_specs(agent) -> list[McpServerSpec]:
    """The agent's integrations' MCP servers, as every surface gets them (assistant/tools/toolset.py)."""
    try:
        return integration_specs(agent)
    except McpConfigError as exc:
        raise OrchestratorError("bad_mcp_config", str(exc)) from None


def _store_answer(session, event: ModelCallFinished) -> None:
    from agents.services import message_append

    with transaction.atomic():
        message_append(
            session=session,
            role="assistant",
            content=event.content,
            status="complete",
            model=event.model or "",
            stop_reason=event.stop_reason or "",
            **_counted_usage(session, event.usage.as_dict()),
        )


def _audit_tool_calls(session, calls: list[tuple[ToolCall, ToolOutcome]], decisions: dict[str, Any]) -> None:
    from audit.services import ToolCallRecord, tool_calls_record

    records = [
        ToolCallRecord(call.name, call.input, result.is_error, result.duration_ms, result.content,
                       decisions.get(result.tool_use_id))  # fmt: skip
        for call, result in calls
    ]
    tool_calls_record(session_id=session.pk, calls=records, source="cli")


def _check_budget(user_id: int) -> None:
    from usage.services import BudgetExceeded, budget_check

    try:
        budget_check(user_id)
    except BudgetExceeded as exc:
        raise OrchestratorError(exc.code, exc.message) from None


async def _budget_before_call(session, turn: int) -> None:
    """Before every model call of the run: the owner's budgets (BudgetExceeded ends the run)."""
    from usage.services import budget_check

    await sync_to_async(budget_check, thread_sensitive=True)(session.owner_id)


def _counted_usage(session, usage: dict[str, int]) -> dict[str, Any]:
    """A new message's usage fields with its cost, counted against its owner's budgets (call in the
    transaction that stores the message)."""
    from agents.selectors import llm_config_for_agent
    from usage.services import new_message_usage

    config_id = llm_config_for_agent(session.agent).config_id
    return {**usage, **new_message_usage(user_id=session.owner_id, config_id=config_id, usage=usage)}


def _store_results(session, results: list[ToolOutcome]) -> None:
    from agents.services import message_append

    message_append(session=session, role="user", content=[r.as_block() for r in results], status="complete")


def _store_unfinished(
    session,
    *,
    text: str,
    status: str,
    model: str,
    code: str = "",
    message: str = "",
    pending_calls: list[ToolCall] = (),
    usage: Usage | None = None,
) -> None:
    """A partial answer (stopped or failed) with the usage known when it ended, or results for tool
    calls that never finished."""
    from agents.services import message_append

    if pending_calls:
        blocks = [
            ToolOutcome(c.id, "The run was interrupted before this tool finished.", is_error=True).as_block()
            for c in pending_calls
        ]
        message_append(session=session, role="user", content=blocks, status="complete")
    usage_fields = usage.as_dict() if usage is not None else {}
    if text or code or any(usage_fields.values()):  # an empty answer that cost tokens is kept too
        with transaction.atomic():
            message_append(
                session=session,
                role="assistant",
                content=[{"type": "text", "text": text}] if text else [],
                status=status,
                model=model,
                error_code=code,
                error_message=message,
                **(_counted_usage(session, usage_fields) if usage_fields else {}),
            )


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
