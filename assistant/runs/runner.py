"""The runner: one task per turn relaying the model loop's events to storage and to listeners."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from dataclasses import dataclass, field
from typing import Any

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.conf import settings

import observability
from agents.models import Message
from assistant.engine import (
    ClientToolsRequested,
    LoopFinished,
    LoopRequest,
    ModelCallFinished,
    ModelCallStarted,
    TextDelta,
    ThinkingDelta,
    ToolCall,
    ToolOutcome,
    ToolResults,
    ToolsHeld,
    ToolUseRequested,
    Usage,
    UsageReported,
    agent_loop,
    server_calls_of,
)
from assistant.llm import LLMError
from assistant.runs.runner_approvals import ApprovalSteps, TurnCannotGoOn
from assistant.runs.runner_events import EventSteps, Pending
from assistant.runs.stop_listener import stop_listener
from assistant.runs.plan import TurnPlan
from assistant.runs.writer import message_append, streaming_message_touch
from assistant.tools.mcp import McpStartError
from assistant.tools.toolset import open_agent_tools
from config.errors import CodedError
from config.threads import run_sync

logger = logging.getLogger(__name__)

TOOL_OUTPUT_PREVIEW = 500  # characters of a tool result sent in a `tool_result` event




class TurnToolsUnavailable(CodedError):
    """An MCP server of the agent did not start: the turn ends with this error (code
    `tool_unavailable`) rather than run without tools the agent's instructions may count on."""

    def __init__(self, message: str):
        super().__init__("tool_unavailable", message)


# --- running ------------------------------------------------------------------------------------

_running: dict[int, TurnRunner] = {}  # session id → runner; also keeps the tasks referenced


def running_turn(session_id: int) -> TurnRunner | None:
    return _running.get(session_id)


@dataclass
class TurnRunner(EventSteps, ApprovalSteps):
    plan: TurnPlan
    listeners: list[asyncio.Queue] = field(default_factory=list)  # same-process readers (SSE)
    # Usage of the model call in progress as reported so far (None between calls), and of the
    # turn's finished calls: a stopped or failed answer keeps the tokens it already cost.
    call_usage: Usage | None = field(default=None, init=False)
    finished_usage: Usage = field(default_factory=Usage, init=False)
    model_calls: int = field(default=0, init=False)  # started so far (`turns` of a stopped result)

    def __post_init__(self) -> None:
        self.session_id = self.plan.session_id
        # The first are stored with the plan: `session`, or a resumed turn's decisions.
        self.next_seq = self.plan.first_event_seq + len(self.plan.opening())
        self.message_id: int | None = self.plan.assistant_message_id
        self.text = ""
        self.thinking = ""
        self.pending = Pending()
        self.last_flush = 0.0  # last write of any event (heartbeat)
        # Last write of coalesced deltas. Kept apart from last_flush: the `session` event is written
        # just before the model's first delta, and must not make that delta wait a flush interval
        # (it did: ~45 ms added to every first token, bench/RESULTS.md).
        self.last_delta_flush = 0.0
        self.flush_timer: asyncio.Task | None = None
        self.lock = asyncio.Lock()
        self.layer = get_channel_layer()
        self.stop_requested = False
        self.pending_calls: dict[str, ToolCall] = {}  # tool calls running now, by id
        # Results the open tool-results message already holds (a resumed turn's calls run before the
        # pause, denied or expired): kept when a stop or failure answers the pending ones.
        self.settled_results: list[ToolOutcome] = []
        self.paused = False  # ended waiting for approvals (its message is `awaiting`)
        self.finished = False  # its `result` is being sent: too late to stop it
        self.loop_task: asyncio.Task | None = None
        self.task: asyncio.Task | None = None
        self.done = asyncio.Event()
        # The fields that finish the turn's last model call, written with its `result` (one write
        # for the last text, the final message and the result).
        self.final_fields: dict[str, Any] | None = None
        self.outcome = "error"  # how it ended, for conduit_turns_total: complete, stopped, awaiting_approval
        self.first_token_at: float | None = None
        # The client's tools the last answer called (an API caller runs them): sent with the result.
        self.client_calls: list[ToolCall] = []

    @property
    def message_id(self) -> int | None:
        """The message the runner writes to now (None between a tool result and the next call)."""
        return self._message_id

    @message_id.setter
    def message_id(self, value: int | None) -> None:
        self._message_id = value
        self.stored_usage: dict[str, Any] = {}  # its usage as stored (a new message has none)

    # -- lifecycle

    def start(self) -> asyncio.Task:
        _running[self.session_id] = self
        self.loop = asyncio.get_running_loop()
        self.task = asyncio.create_task(self._run(), name=f"turn-{self.session_id}")
        return self.task

    def request_stop_threadsafe(self) -> None:
        """request_stop from another thread (a response closed by Django's handler in its thread)."""
        self.loop.call_soon_threadsafe(self.request_stop)

    def request_stop(self) -> None:
        if self.finished:
            return
        self.stop_requested = True
        if self.loop_task is not None and not self.loop_task.done():
            self.loop_task.cancel()

    async def _run(self) -> None:
        plan = self.plan
        observability.bind_log_context(user_id=plan.budget.user_id if plan.budget else None, session_id=self.session_id)
        self.started_at = time.monotonic()
        observability.turn_started()
        try:
            with observability.turn_span(plan.agent_slug, self.session_id):
                await self._run_turn()
        finally:
            observability.turn_finished(plan.transport, self.outcome, time.monotonic() - self.started_at)

    async def _run_turn(self) -> None:
        await stop_listener(self.layer, _running).watch(self.session_id)
        heartbeat = asyncio.create_task(self._heartbeat())
        try:
            try:
                if self.plan.resume is not None:
                    self._resume_pending()
                if self.stop_requested:  # asked before it started (a client gone while it was planned)
                    await self._publish_session_event()
                    raise asyncio.CancelledError()
                # The model is asked while the `session` event goes out (a Redis round trip): under the
                # lock, which the answer's first write waits for, so the event still comes first.
                async with self.lock:
                    self.loop_task = asyncio.create_task(self._consume())
                    await self._publish_session_event()
                await self.loop_task
            except asyncio.CancelledError:
                # We were cancelled ourselves (a stop cancels only the model loop): process shutdown.
                if asyncio.current_task().cancelling():
                    await asyncio.shield(self._finish_error("interrupted", "The server is shutting down."))
                    raise
                await self._finish_stopped()
            except LLMError as exc:
                await self._finish_error(exc.code, exc.message)
            except (TurnToolsUnavailable, TurnCannotGoOn) as exc:
                logger.warning("Turn of session %s: %s", self.session_id, exc.message)
                await self._finish_error(exc.code, exc.message)
            except Exception:
                logger.exception("Turn of session %s failed", self.session_id)
                await self._finish_error("internal_error", "The answer failed because of an internal error.")
        finally:
            heartbeat.cancel()
            await stop_listener(self.layer, _running).unwatch(self.session_id)
            if self.flush_timer:
                self.flush_timer.cancel()
            if _running.get(self.session_id) is self:
                _running.pop(self.session_id)
            self.done.set()
        if self.paused:
            await self._resume_if_decided()

    async def _consume(self) -> None:
        setup = self.plan.tools
        if setup is None or setup.empty or self.plan.request.tools is not None:
            await self._relay(await self._resumed(self.plan.request))
            return
        try:
            async with open_agent_tools(setup) as tools:
                await self._relay(await self._resumed(dataclasses.replace(self.plan.request, tools=tools)))
        except McpStartError as exc:
            raise TurnToolsUnavailable(str(exc)) from None

    async def _relay(self, request: LoopRequest) -> None:
        async for event in agent_loop(request):
            match event:
                case TextDelta(text=text):
                    if self.first_token_at is None:
                        self.first_token_at = time.monotonic()
                        observability.turn_first_token(self.plan.transport, self.first_token_at - self.started_at)
                    self.pending.text += text
                    await self._schedule_flush()
                case ThinkingDelta(text=text):
                    self.pending.thinking += text
                    await self._schedule_flush()
                case ToolUseRequested(call=call):
                    await self._emit("tool_use", {"id": call.id, "name": call.name, "input": call.input})
                case UsageReported(usage=usage):
                    self.call_usage = usage
                case ModelCallStarted(turn=turn):
                    self.call_usage = Usage()
                    self.model_calls = turn
                    if turn > 1 or self.message_id is None:  # (None: a resumed turn's first call)
                        self.message_id = await run_sync(
                            message_append,
                            self.session_id, role=Message.Role.ASSISTANT, content=[], status=Message.Status.STREAMING,
                            model=self.plan.request.model.model,
                        )  # fmt: skip
                        self.text = self.thinking = ""
                case ModelCallFinished():
                    if self.plan.budget is not None:
                        model = self.plan.request.model
                        observability.model_cost_added(
                            model.provider, model.model, self.plan.budget.prices.cost(event.usage.as_dict())
                        )
                    calls = server_calls_of(request, event.content) if request.tools is not None else []
                    if not (event.stop_reason == "tool_use" and calls):
                        # The loop ends with this call: written with the result (LoopFinished, next).
                        self.final_fields = self._finished_message_fields(event)
                        self.finished_usage.add(event.usage)
                        self.call_usage = None
                        continue
                    self.call_usage = event.usage  # a stop while this is stored keeps the final count
                    await self._flush()
                    await self._persist_now([], self._finished_message_fields(event))
                    self.finished_usage.add(event.usage)
                    self.call_usage = None
                    # The tools' results, `streaming` while they run: the turn still counts as
                    # running (one turn per session, the user's limit, the heartbeat), and a stop
                    # or failure answers each unfinished call here, so the next turn's history
                    # has a result for every tool_use.
                    self.pending_calls = {call.id: call for call in calls}
                    self.message_id = await run_sync(
                        message_append,
                        self.session_id, role=Message.Role.USER, content=[], status=Message.Status.STREAMING
                    )
                case ToolResults(results=results):
                    called, self.pending_calls = self.pending_calls, {}
                    names = {call_id: call.name for call_id, call in called.items()}
                    await self._audit(results, called)
                    await self._persist_now(
                        [], {"content": [r.as_block() for r in results], "status": Message.Status.COMPLETE}
                    )
                    self.message_id = None  # until the next model call opens its message
                    for result in results:
                        await self._emit("tool_result", self._tool_result_data(result, names.get(result.tool_use_id, "")))
                case ClientToolsRequested(calls=client_calls):
                    self.client_calls = client_calls
                case ToolsHeld(results=results, held=held):
                    await self._hold(results, held)
                case LoopFinished(stop_reason="approval_required"):
                    self.finished = self.paused = True
                    self.outcome = "awaiting_approval"
                    await self._emit(
                        "result",
                        {"status": "awaiting_approval", "stop_reason": event.stop_reason, "usage": event.usage.as_dict(),
                         "turns": event.turns, "duration_ms": event.duration_ms},
                        message_fields={"status": Message.Status.AWAITING_APPROVAL},
                    )  # fmt: skip
                case LoopFinished():
                    self.finished = True
                    self.outcome = "complete"
                    final, self.final_fields = self.final_fields, None
                    await self._emit(
                        "result",
                        {
                            "status": "complete",
                            "stop_reason": event.stop_reason,
                            "usage": event.usage.as_dict(),
                            "turns": event.turns,
                            "duration_ms": event.duration_ms,
                            **self._client_calls_data(),
                        },
                        message_fields=final,
                    )

    @staticmethod
    def _finished_message_fields(event: ModelCallFinished) -> dict[str, Any]:
        return {
            "content": event.content,
            "status": Message.Status.COMPLETE,
            "stop_reason": event.stop_reason or "",
            "model": event.model,
            **event.usage.as_dict(),
        }

    def _client_calls_data(self) -> dict[str, Any]:
        if not self.client_calls:
            return {}
        return {"client_tool_calls": [{"id": c.id, "name": c.name, "input": c.input} for c in self.client_calls]}

    @staticmethod
    def _tool_result_data(result: ToolOutcome, name: str) -> dict[str, Any]:
        return {"id": result.tool_use_id, "name": name, "is_error": result.is_error,
                "output": result.content[:TOOL_OUTPUT_PREVIEW]}  # fmt: skip

    async def _answer_pending_calls(self, reason: str) -> bool:
        """Tool calls cut short by a stop or a failure get an error result each (stored, and sent so
        clients close them). True when there were some: the open message is their results."""
        if not self.pending_calls:
            return False
        calls, self.pending_calls = self.pending_calls, {}
        results = [ToolOutcome(call_id, reason, is_error=True) for call_id in calls]
        blocks = [r.as_block() for r in [*self.settled_results, *results]]
        await self._persist_now([], {"content": blocks, "status": Message.Status.COMPLETE})
        for result in results:
            await self._emit("tool_result", self._tool_result_data(result, calls[result.tool_use_id].name))
        return True

    async def _write_final_fields(self) -> None:
        """The last model call's fields, if a stop or failure came before they went out with the result."""
        if self.final_fields is not None:
            final, self.final_fields = self.final_fields, None
            await self._persist_now([], final)

    async def _finish_stopped(self) -> None:
        self.outcome = "stopped"
        await self._write_final_fields()
        await self._flush()
        if not await self._answer_pending_calls("The user stopped the turn before this tool finished."):
            await self._persist_now(
                [],
                {
                    "status": Message.Status.STOPPED, "stop_reason": "stopped", "content": self._partial_content(),
                    **self._call_usage_fields(),
                },
            )  # fmt: skip
        usage = Usage()
        usage.add(self.finished_usage)
        usage.add(self.call_usage or Usage())
        await self._emit(
            "result",
            {"status": "stopped", "stop_reason": "stopped", "usage": usage.as_dict(), "turns": self.model_calls},
        )

    async def _finish_error(self, code: str, message: str) -> None:
        self.outcome = "error"
        await self._write_final_fields()
        await self._flush()
        answered = await self._answer_pending_calls(f"The turn ended before this tool finished: {message}")
        if answered or self.message_id is None:
            # The error goes on an assistant message of its own after the results (the finished
            # answer that asked for the tools stays as it was).
            self.message_id = await run_sync(
                message_append,
                self.session_id, role=Message.Role.ASSISTANT, content=[], status=Message.Status.STREAMING,
                model=self.plan.request.model.model,
            )  # fmt: skip
            self.text = ""
        await self._persist_now(
            [],
            {
                "status": Message.Status.ERROR, "error_code": code, "error_message": message,
                "content": self._partial_content(), **self._call_usage_fields(),
            },
        )  # fmt: skip
        await self._emit("error", {"code": code, "message": message})

    def _call_usage_fields(self) -> dict[str, int]:
        """The unfinished call's usage for its message; nothing between calls (a finished call's
        message already has its own)."""
        return self.call_usage.as_dict() if self.call_usage is not None else {}

    # -- background duties

    async def _heartbeat(self) -> None:
        """Keep the streaming message fresh while the model is silent, so it isn't taken for stale."""
        interval = settings.ASSISTANT_STALE_TURN_AFTER / 4
        while True:
            await asyncio.sleep(interval)
            if time.monotonic() - self.last_flush >= interval and self.message_id is not None:
                await run_sync(streaming_message_touch, self.message_id)


async def turn_start(plan: TurnPlan, *, listeners: list[asyncio.Queue] | None = None) -> TurnRunner:
    runner = TurnRunner(plan, listeners=listeners or [])
    runner.start()
    return runner


def turn_start_from_sync(plan: TurnPlan) -> tuple[TurnRunner, asyncio.Queue]:
    """From a sync view on the ASGI path (the run API, code assistance): the turn's runner started on
    the event loop now, with a queue of its events for the response. Started here rather than by the
    response's first read: a response that is never read (its client gone while the turn was planned)
    would leave the answer `streaming` until the stale-turn sweep, counted against the user's limit."""
    queue: asyncio.Queue = asyncio.Queue()
    runner = async_to_sync(turn_start)(plan, listeners=[queue])
    return runner, queue


async def turn_start_when_planned(planning: asyncio.Future) -> None:
    """For a request cancelled (its client gone) while its turn was being planned: once the plan is
    stored, its turn starts and stops at once, so the answer is kept `stopped`, not left `streaming`.
    `planning`'s result is a TurnPlan, or a tuple whose last item is one."""
    try:
        planned = await planning
    except BaseException:  # noqa: BLE001 - refused or failed: nothing was stored
        return
    plan = planned[-1] if isinstance(planned, tuple) else planned
    runner = await turn_start(plan)
    runner.request_stop()
