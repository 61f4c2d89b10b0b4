"""The runner's part in approvals (runs/approvals.py): pausing at held tool calls, going on after the
decisions, and each call's audit event. A mixin of TurnRunner, whose state and events it uses."""

from __future__ import annotations

import dataclasses
import logging

from agents.models import Message
from assistant.engine import LoopRequest, ToolCall, ToolOutcome, run_tool_calls
from assistant.runs.approvals import StoredMessage, approvals_hold, resume_if_decided, tool_approval
from assistant.runs.history import api_messages
from audit.services import ToolCallRecord, tool_calls_record
from config.errors import CodedError
from config.threads import run_sync

logger = logging.getLogger(__name__)


class TurnCannotGoOn(CodedError):
    """A resumed turn whose agent can't be used any more (runs/approvals.py ResumeState.failure)."""


class ApprovalSteps:

    async def _hold(self, results: list[ToolOutcome], held: list[ToolCall]) -> None:
        """The model message's calls that need approval wait: stored as pending, announced after the
        results of its other calls."""
        # Past the point a stop can change: the pause is stored, then announced, as a whole.
        self.finished = True
        called, self.pending_calls = self.pending_calls, {}
        names = {call_id: call.name for call_id, call in called.items()}
        await self._audit(results, called)
        self.awaiting_message_id = self.message_id
        requests = await run_sync(
            approvals_hold, session_id=self.session_id, message_id=self.message_id, results=results, held=held
        )
        for result in results:
            await self._emit("tool_result", self._tool_result_data(result, names.get(result.tool_use_id, "")))
        for request in requests:
            await self._emit("approval_request", request)

    def _resume_pending(self) -> None:
        """A resumed turn's allowed calls count as running from its start: a stop or failure before
        they finish answers them (with the results already settled kept)."""
        resume = self.plan.resume
        self.pending_calls = {call.id: call for call in resume.to_run}
        self.settled_results = [resume.settled[c.id] for c in resume.calls if c.id in resume.settled]

    async def _resumed(self, request: LoopRequest) -> LoopRequest:
        """For a resumed turn: run the calls the user allowed, store every call's result (in the
        order the model asked), and go on from the conversation with them; else `request` as is."""
        resume = self.plan.resume
        if resume is None:
            return request
        if resume.failure is not None:
            raise TurnCannotGoOn(*resume.failure)
        ran = await run_tool_calls(request.tools, resume.to_run) if resume.to_run else []
        outcomes = {**resume.settled, **{outcome.tool_use_id: outcome for outcome in ran}}
        results = [outcomes[call.id] for call in resume.calls]
        names = {call.id: call.name for call in resume.calls}
        self.pending_calls, self.settled_results = {}, []
        decided = [outcomes[call_id] for call_id in resume.approvals if call_id in outcomes]
        await self._audit(decided, {call.id: call for call in resume.calls}, resume.approvals)
        blocks = [result.as_block() for result in results]
        await self._persist_now([], {"content": blocks, "status": Message.Status.COMPLETE})
        self.message_id = None  # the next model call opens its message
        announced = {call.id for call in resume.to_run} | {a for a in resume.approvals}
        for result in results:
            if result.tool_use_id in announced:
                await self._emit("tool_result", self._tool_result_data(result, names[result.tool_use_id]))
        history = api_messages([*resume.history, StoredMessage(Message.Role.USER, Message.Status.COMPLETE, blocks)])
        return dataclasses.replace(request, messages=history)

    async def _audit(self, results: list[ToolOutcome], calls: dict[str, ToolCall], approvals=None) -> None:
        """Each call's audit event: its input (secrets masked), outcome, duration, result, approval."""
        if not results:
            return
        records = []
        for result in results:
            call = calls.get(result.tool_use_id) or ToolCall(result.tool_use_id, "", {})
            approval = (approvals or {}).get(result.tool_use_id)
            records.append(ToolCallRecord(call.name, call.input, result.is_error, result.duration_ms, result.content,
                                          approval and tool_approval(approval)))  # fmt: skip
        await run_sync(tool_calls_record, session_id=self.session_id, calls=records, source="turn")

    async def _resume_if_decided(self) -> None:
        """Decisions that came before this turn's message was `awaiting` resumed nothing: resume now."""
        try:
            plan = await run_sync(resume_if_decided, self.awaiting_message_id)
        except Exception:  # noqa: BLE001 - the sweeps or the next decision will find it
            logger.exception("Session %s: looking for decisions made while pausing failed", self.session_id)
            return
        if plan is not None:
            await type(self)(plan).start()

