"""The agent loop, free of the database and of any transport.

`agent_loop` streams the model's answer, and when the model asks for tools (and a tool runner is given)
runs them, parallel calls of one turn concurrently, sends the results back and goes on, until the
model ends its turn or the turn limit is reached. Calls an `ApprovalGate` holds are decided at once, or
end the loop (`ToolsHeld`, then `approval_required`) for the turn to go on once a person decided.
It yields typed events; callers persist, relay or print them. Cancelling the task that iterates it closes the upstream stream (stop means stop).
While a model call streams, `UsageReported` carries its usage so far, one object kept up to date in place
(an estimate until the provider's figures come): a call that is stopped, cut off or fails mid-stream still
counts what it sent and received before it ended.
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
from contextlib import aclosing
from dataclasses import dataclass, field
from typing import Any, AsyncIterator, Awaitable, Callable, Protocol

import observability
from assistant.llm import LLMError, ModelCall, ModelSettings, check_configured, stream_call
from assistant.llm.types import (
    ModelCallFinished,
    ResponseFormat,
    TextDelta,
    ThinkingDelta,
    ToolCall,
    ToolChoice,
    ToolUseRequested,
    Usage,
    UsageReported,
)


@dataclass(frozen=True)
class ToolOutcome:
    tool_use_id: str
    content: str
    is_error: bool = False
    duration_ms: int | None = None  # how long the call ran (None: it didn't run)

    def as_block(self) -> dict[str, Any]:
        return {"type": "tool_result", "tool_use_id": self.tool_use_id, "content": self.content, "is_error": self.is_error}


class ToolRunner(Protocol):
    def definitions(self) -> list[dict[str, Any]]:
        """Tool definitions in the Messages API's `tools` format."""

    async def run(self, call: ToolCall) -> ToolOutcome:
        """Run one call. Failures are outcomes with is_error=True, not exceptions: the model reads them."""


@dataclass(frozen=True)
class ApprovalGate:
    """Which tool calls wait for a person's yes, and how they get it.

    `required(call)` picks them. Without `decide`, the loop stops at them: it runs the model message's
    other calls, yields `ToolsHeld` and ends (`approval_required`), for the turn to be resumed once a
    person decided (assistant/runs/approvals.py). With `decide` (a terminal that can ask, an API that
    can't), each is decided at once: None runs it, an outcome (an error the model reads) replaces it."""

    required: Callable[[ToolCall], bool]
    decide: Callable[[ToolCall], Awaitable[ToolOutcome | None]] | None = None


# --- events ---------------------------------------------------------------------------------


@dataclass
class ModelCallStarted:
    turn: int


@dataclass
class ToolResults:
    results: list[ToolOutcome]


@dataclass
class ToolsHeld:
    """The model message's calls that need approval (`held`), and the results of its others."""

    results: list[ToolOutcome]
    held: list[ToolCall]


@dataclass
class ClientToolsRequested:
    """The model called tools of the client's (`LoopRequest.client_tools`): the loop ends
    (stop reason `tool_use`) for the client to run them and send their results in a next turn."""

    calls: list[ToolCall]


@dataclass
class LoopFinished:
    stop_reason: str
    usage: Usage
    turns: int
    duration_ms: int


LoopEvent = (
    ModelCallStarted
    | UsageReported
    | TextDelta
    | ThinkingDelta
    | ToolUseRequested
    | ModelCallFinished
    | ToolResults
    | ToolsHeld
    | ClientToolsRequested
    | LoopFinished
)


# --- the loop -------------------------------------------------------------------------------


@dataclass
class LoopRequest:
    model: ModelSettings
    messages: list[dict[str, Any]]
    system: str = ""
    tools: ToolRunner | None = None
    max_turns: int = 1
    # Sequences that end the model's answer early (stop_reason "stop_sequence"); every provider has them.
    stop_sequences: tuple[str, ...] = ()
    extra: dict[str, Any] = field(default_factory=dict)
    # Awaited before each model call (with its turn number), after ModelCallStarted: raising an
    # LLMError (e.g. usage's BudgetExceeded) ends the loop before the model is reached.
    before_model_call: Callable[[int], Awaitable[None]] | None = None
    approval: ApprovalGate | None = None
    # Tools of the client (an API caller), offered beside the agent's own (`tools`) in the Messages
    # API's format; the loop doesn't run them: their calls end it (ClientToolsRequested).
    client_tools: list[dict[str, Any]] = field(default_factory=list)
    tool_choice: ToolChoice | None = None
    parallel_tool_calls: bool | None = None
    response_format: ResponseFormat | None = None

    def client_tool_names(self) -> set[str]:
        return {definition["name"] for definition in self.client_tools}


class ClientToolConflict(LLMError):
    """A client tool named like one of the agent's own: which one the model meant couldn't be told."""

    def __init__(self, name: str):
        super().__init__("tool_name_conflict", f"The client tool `{name}` has the name of one of the agent's own tools.")
        self.name = name


def server_calls_of(request: LoopRequest, content: list[dict[str, Any]]) -> list[ToolCall]:
    """The calls of a model answer's content that the server runs (all but the client's tools')."""
    client = request.client_tool_names()
    return [
        ToolCall(b["id"], b["name"], b.get("input") or {})
        for b in content
        if b["type"] == "tool_use" and b["name"] not in client
    ]


async def agent_loop(request: LoopRequest) -> AsyncIterator[LoopEvent]:
    started = time.monotonic()
    check_configured(request.model)
    history = list(request.messages)
    total = Usage()
    tool_definitions = request.tools.definitions() if request.tools else []
    own = {definition["name"] for definition in tool_definitions}
    for definition in request.client_tools:
        if definition["name"] in own:
            raise ClientToolConflict(definition["name"])
    tool_definitions = [*tool_definitions, *request.client_tools]
    client_names = request.client_tool_names()
    for turn in range(1, request.max_turns + 1):
        yield ModelCallStarted(turn)
        if request.before_model_call is not None:
            await request.before_model_call(turn)
        model = request.model
        span = observability.model_call_span(model.provider, model.model, history, request.system)
        call = ModelCall(
            messages=history,
            system=request.system,
            tools=tool_definitions,
            stop_sequences=request.stop_sequences,
            extra=_with_headers(request.extra, span.headers()),
            # A forced choice (required, a named tool) holds for the first answer only, as it holds
            # for one answer of OpenAI's: after the server's tools ran, the model may end.
            tool_choice=request.tool_choice if tool_definitions and turn == 1 else None,
            parallel_tool_calls=request.parallel_tool_calls if tool_definitions else None,
            response_format=request.response_format,
        )
        final: ModelCallFinished | None = None
        usage: Usage | None = None  # the call's usage so far (kept up to date in place by the adapter)
        outcome = "cancelled"
        call_started = time.monotonic()
        try:
            # aclosing: a cancelled loop closes the adapter's stream, and with it the upstream request.
            async with aclosing(stream_call(model, call)) as events:
                async for event in events:
                    if isinstance(event, ModelCallFinished):
                        final = event
                    else:
                        if isinstance(event, UsageReported):
                            usage = event.usage
                        yield event
            outcome = "ok"
        except LLMError as exc:
            outcome = "error"
            span.fail(exc)
            raise
        except BaseException as exc:
            span.fail(exc)
            raise
        finally:
            observability.model_time_add(time.monotonic() - call_started)
            observability.model_call_finished(
                model.provider, model.model, outcome, final.usage if final is not None else usage
            )
        assert final is not None  # every adapter ends with ModelCallFinished or raises
        span.finish(final)
        total.add(final.usage)
        yield final
        history.append({"role": "assistant", "content": final.content})

        asking = final.stop_reason == "tool_use"
        calls = server_calls_of(request, final.content) if asking and request.tools is not None else []
        client_calls = [
            ToolCall(b["id"], b["name"], b.get("input") or {})
            for b in final.content
            if asking and b["type"] == "tool_use" and b["name"] in client_names
        ]
        if not calls and not client_calls:
            yield LoopFinished(final.stop_reason or "end_turn", total, turn, _ms_since(started))
            return
        if calls:
            # The server's calls run first, even beside the client's: their results are stored,
            # and the client's next turn (with its own results) goes on after them.
            results, held = await _run_calls(request.tools, calls, request.approval)
            if held:
                yield ToolsHeld(results, held)
                yield LoopFinished("approval_required", total, turn, _ms_since(started))
                return
            yield ToolResults(results)
            history.append({"role": "user", "content": [result.as_block() for result in results]})
        if client_calls:
            yield ClientToolsRequested(client_calls)
            yield LoopFinished("tool_use", total, turn, _ms_since(started))
            return

    yield LoopFinished("max_turns", total, request.max_turns, _ms_since(started))


async def _run_calls(
    tools: ToolRunner, calls: list[ToolCall], gate: ApprovalGate | None
) -> tuple[list[ToolOutcome], list[ToolCall]]:
    """Run a model message's calls, concurrently, as the approval gate lets them: (their outcomes in
    the calls' order, the calls held for a decision)."""
    needing = [call for call in calls if gate is not None and gate.required(call)]
    refused: dict[str, ToolOutcome] = {}
    held: list[ToolCall] = []
    if needing and gate.decide is not None:
        for call in needing:  # one at a time: a person answers them in turn
            outcome = await gate.decide(call)
            if outcome is not None:
                refused[call.id] = outcome
    else:
        held = needing
    held_ids = {call.id for call in held}
    runnable = [call for call in calls if call.id not in held_ids and call.id not in refused]
    ran = dict(zip((call.id for call in runnable), await run_tool_calls(tools, runnable)))
    outcomes = [refused.get(call.id) or ran[call.id] for call in calls if call.id not in held_ids]
    return outcomes, held


async def run_tool_calls(tools: ToolRunner, calls: list[ToolCall]) -> list[ToolOutcome]:
    """The calls run concurrently, each outcome with its duration."""

    async def timed(call: ToolCall) -> ToolOutcome:
        began = time.monotonic()
        with observability.tool_call_span(call.name, call.id) as span:
            outcome = await tools.run(call)
            if outcome.is_error:
                span.set("error.type", "tool_error")
        observability.tool_call_finished(outcome.is_error, time.monotonic() - began)
        return dataclasses.replace(outcome, duration_ms=_ms_since(began))

    return list(await asyncio.gather(*(timed(call) for call in calls)))


def _with_headers(extra: dict[str, Any], headers: dict[str, str]) -> dict[str, Any]:
    """The call's extra parameters with `headers` (the trace context, when tracing is on) sent along."""
    if not headers:
        return extra
    return {**extra, "extra_headers": {**extra.get("extra_headers", {}), **headers}}


def _ms_since(started: float) -> int:
    return int((time.monotonic() - started) * 1000)


__all__ = [
    "ApprovalGate",
    "ClientToolConflict",
    "ClientToolsRequested",
    "LLMError",
    "LoopEvent",
    "LoopRequest",
    "ModelCallFinished",
    "ModelSettings",
    "ToolCall",
    "ToolOutcome",
    "ToolRunner",
    "ToolsHeld",
    "Usage",
    "UsageReported",
    "agent_loop",
    "run_tool_calls",
]
