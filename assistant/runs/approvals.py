"""Approvals: a person says yes before an agent's tool acts, and a paused turn outlives its process.

When the model asks for tools the agent's policy holds (AgentTools.approval_required), the runner
stores them as pending `Approval`s (`approvals_hold`), runs the message's other calls, sends an
`approval_request` event per held call and ends the turn with a `result` of status
`awaiting_approval`: its tool results message stays `awaiting`. Nothing of the turn is left in any
process: no runner, no model connection, no count against the user's running turns, nothing the
stale sweep would close.

Each decision (`approval_decide`; runs/decisions.py carries it on, from the websocket or REST, on any
process) is stored with an
`approval_decision` event under the session's row lock, once: a second is refused. The last one of a
message claims it (`awaiting` → `streaming`, one conditional update: two processes can't both resume
it) and plans the rest of the turn from the stored messages (`_resume_plan`); the runner then runs
the allowed calls (each exactly once: only the claim's winner runs them), gives the denied ones an
error result the model reads, and goes on with the model. Calls nobody decided on within
ASSISTANT_APPROVAL_TIMEOUT are denied as expired by every process's sweep (`approvals_expire`).

The decision can land before the runner that paused has stored `awaiting` (a fast click): the runner
looks again once it has (`resume_if_decided`). Each side writes, then reads what the other wrote, so one
of them sees both and resumes.
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import Max
from django.utils import timezone

from agents.catalog import catalog_version
from agents.models import Message, UserAgentSession
from assistant.engine import LoopRequest, ToolCall, ToolOutcome
from assistant.models import Approval, TurnEvent
from assistant.runs.catalog import turn_catalog
from audit.services import ToolApproval
from assistant.runs.plan import TurnPlan, TurnRefused, _check_concurrent_turns, _tool_setup, approval_gate
from connections.turns import ConnectionRequired, specs_for_user
from usage.services import TurnBudget

logger = logging.getLogger(__name__)

AWAITING = Message.Status.AWAITING_APPROVAL
STREAMING = Message.Status.STREAMING
DECISIONS = {"allow": Approval.Status.ALLOWED, "deny": Approval.Status.DENIED}
MAX_REASON_CHARS = 2000


@dataclass(frozen=True)
class StoredMessage:
    role: str
    status: str
    content: list[dict[str, Any]]


@dataclass
class ResumeState:
    """What a resumed turn goes on from: the stored conversation up to the answer that asked for the
    tools, those calls in order, the outcomes already settled (run before the pause, denied,
    expired), the allowed calls to run now, and each held call's approval (for the audit)."""

    history: list[StoredMessage]
    calls: list[ToolCall]
    settled: dict[str, ToolOutcome]
    to_run: list[ToolCall]
    approvals: dict[str, Approval] = field(default_factory=dict)
    # Why the turn can't go on (its agent is gone, say): the allowed calls don't run, the turn ends
    # with this error.
    failure: tuple[str, str] | None = None


# --- pausing (the runner) -------------------------------------------------------------------------


def approvals_hold(*, session_id: int, message_id: int, results: list[ToolOutcome], held: list[ToolCall]) -> list[dict]:
    """Store the held calls as pending approvals and the results of the message's other calls;
    returns the `approval_request` events' data."""
    now = timezone.now()
    expires_at = now + timezone.timedelta(seconds=settings.ASSISTANT_APPROVAL_TIMEOUT)
    rows = [
        Approval(id=uuid.uuid4(), session_id=session_id, message_id=message_id, tool_use_id=call.id[:200],
                 name=call.name[:200], input=call.input, expires_at=expires_at)  # fmt: skip
        for call in held
    ]
    with transaction.atomic():
        Approval.objects.bulk_create(rows)
        Message.objects.filter(pk=message_id).update(content=[r.as_block() for r in results], updated_at=now)
    return [approval_request_data(row) for row in rows]


def approval_request_data(approval: Approval) -> dict[str, Any]:
    return {
        "approval_id": str(approval.id),
        "tool_use_id": approval.tool_use_id,
        "name": approval.name,
        "input": approval.input,
        "expires_at": approval.expires_at.isoformat(),
    }


def resume_if_decided(message_id: int) -> TurnPlan | None:
    """For the runner that paused, once its message is `awaiting`: the resumed turn's plan if every
    decision came in meanwhile (and no one else claimed it)."""
    with transaction.atomic():
        session_id = Message.objects.filter(pk=message_id).values_list("session_id", flat=True).first()
        if session_id is None:
            return None
        UserAgentSession.objects.select_for_update().filter(pk=session_id).first()
        if Approval.objects.filter(message_id=message_id, status=Approval.Status.PENDING).exists():
            return None
        return _claim_and_plan(session_id, message_id, opening=[])


# --- deciding -------------------------------------------------------------------------------------


@dataclass
class Decided:
    approval: Approval
    frames: list[dict[str, Any]]  # stored events to publish (when no turn resumes to publish them)
    plan: TurnPlan | None  # the resumed turn, when this was the message's last decision


def approval_decide(*, user, session_id: int, approval_id: str, decision: Any, reason: Any = "") -> Decided:
    """The session owner's decision on one pending approval. TurnRefused: `not_found` (not theirs,
    or no such approval), `invalid` (field), `already_decided`, `too_many_turns` (resuming would
    pass the user's running-turns limit: decided nothing, try again)."""
    if decision not in DECISIONS:
        raise TurnRefused("invalid", "`decision` must be allow or deny.", field="decision")
    if reason is None:
        reason = ""
    if not isinstance(reason, str) or len(reason) > MAX_REASON_CHARS:
        raise TurnRefused("invalid", f"`reason` must be text of at most {MAX_REASON_CHARS} characters.", field="reason")
    try:
        approval_uuid = uuid.UUID(str(approval_id))
    except ValueError:
        raise TurnRefused("not_found", "No such approval.") from None
    now = timezone.now()
    with transaction.atomic():
        session = UserAgentSession.objects.select_for_update().filter(pk=session_id, owner_id=user.pk).first()
        approval = (
            Approval.objects.select_for_update().filter(pk=approval_uuid, session_id=session_id).first()
            if session is not None
            else None
        )
        if approval is None:
            raise TurnRefused("not_found", "No such approval.")
        if approval.status != Approval.Status.PENDING:
            raise TurnRefused("already_decided", f"This tool call was already decided: {approval.status}.")
        status = DECISIONS[decision]
        if approval.expires_at <= now:
            status, reason = Approval.Status.EXPIRED, ""
        others_pending = (
            Approval.objects.filter(message_id=approval.message_id, status=Approval.Status.PENDING)
            .exclude(pk=approval.pk)
            .exists()
        )
        if not others_pending:
            _check_concurrent_turns(user.pk)  # the turn resumes now: it counts as running again
        approval.status, approval.reason = status, reason.strip()
        approval.decided_by, approval.decided_at = user, now
        approval.save(update_fields=["status", "reason", "decided_by", "decided_at"])
        frames = [_decision_event(approval, now)]
        plan = None if others_pending else _claim_and_plan(session_id, approval.message_id, opening=frames)
    decided = Decided(approval, frames, plan)
    if status == Approval.Status.EXPIRED:  # stored as expired (the turn goes on), and refused
        raise LateDecision(decided)
    return decided


class LateDecision(TurnRefused):
    """A decision that came after the approval expired: stored as expired, and refused."""

    def __init__(self, decided: Decided):
        super().__init__("already_decided", "This tool call's approval expired before your decision.")
        self.decided = decided


def _decision_event(approval: Approval, now: datetime) -> dict[str, Any]:
    """Store the `approval_decision` event (under the session's lock, with no runner writing)."""
    data = {
        "approval_id": str(approval.id),
        "tool_use_id": approval.tool_use_id,
        "name": approval.name,
        "decision": approval.status,
        "reason": approval.reason,
        "decided_by": approval.decided_by.email if approval.decided_by_id else None,
    }
    last = TurnEvent.objects.filter(session_id=approval.session_id).aggregate(last=Max("seq"))["last"] or 0
    event = TurnEvent.objects.create(session_id=approval.session_id, seq=last + 1, type="approval_decision", data=data)
    return event.as_frame()


def approvals_pending(*, user, session_id: int | None = None) -> list[Approval]:
    pending = Approval.objects.filter(session__owner_id=user.pk, status=Approval.Status.PENDING)
    if session_id is not None:
        pending = pending.filter(session_id=session_id)
    return list(pending.select_related("session__agent").order_by("created_at"))


# --- resuming -------------------------------------------------------------------------------------


def _claim_and_plan(session_id: int, message_id: int, *, opening: list[dict[str, Any]]) -> TurnPlan | None:
    """In the caller's transaction, with the session locked: take the awaiting message for this
    process (None if it isn't awaiting any more: resumed already) and plan the rest of its turn."""
    now = timezone.now()
    if not Message.objects.filter(pk=message_id, status=AWAITING).update(status=STREAMING, updated_at=now):
        return None
    session = UserAgentSession.objects.get(pk=session_id)
    stored = list(Message.objects.filter(session_id=session_id).order_by("seq").only("seq", "role", "status", "content"))
    awaiting = next(m for m in stored if m.pk == message_id)
    asked = next((m for m in reversed(stored) if m.seq < awaiting.seq and m.role == Message.Role.ASSISTANT), None)
    calls = [
        ToolCall(b["id"], b["name"], b.get("input") or {})
        for b in (asked.content if asked is not None else [])
        if isinstance(b, dict) and b.get("type") == "tool_use"
    ]
    settled = {
        b["tool_use_id"]: ToolOutcome(b["tool_use_id"], _text_of(b.get("content")), bool(b.get("is_error")))
        for b in awaiting.content or []
        if isinstance(b, dict) and b.get("type") == "tool_result"
    }
    approvals = {a.tool_use_id: a for a in Approval.objects.filter(message_id=message_id).select_related("decided_by")}
    to_run = []
    for call in calls:
        if call.id in settled:
            continue
        approval = approvals.get(call.id)
        if approval is not None and approval.status == Approval.Status.ALLOWED:
            to_run.append(call)
        else:
            settled[call.id] = ToolOutcome(call.id, _refusal_text(approval), is_error=True)
    history = [StoredMessage(m.role, m.status, m.content) for m in stored if m.seq <= (asked.seq if asked else 0)]

    version = catalog_version()
    agent = turn_catalog.agent(version, session.agent_id)
    failure = None
    system = ""
    mcp_specs: tuple = ()
    if agent is None or not agent.is_active:
        failure = ("agent_unavailable", "This session's agent is no longer available.")
    elif agent.refusal is not None:
        failure = agent.refusal
    elif agent.tools_problem is not None:
        failure = ("agent_unavailable", agent.tools_problem)
    else:
        try:
            system = agent.system_prompt(session.custom_properties or {})
        except Exception as exc:  # noqa: BLE001 - a prompt whose variables this session lacks
            failure = ("invalid", f"This session's agent can't be used: {exc}")
        # The user's own tokens (issue 29): no refresh here, in the caller's transaction; a token not yet
        # expired is used, an expired one ends the turn with `connection_required`.
        try:
            mcp_specs = specs_for_user(user_id=session.owner_id, specs=agent.tools.mcp_specs if agent.tools else (),
                                       personal=agent.tools.personal if agent.tools else (), refresh=False)  # fmt: skip
        except ConnectionRequired as missing:
            failure = failure or ("connection_required", missing.message)
    resume = ResumeState(history, calls, settled, to_run, approvals, failure)
    last_event = TurnEvent.objects.filter(session_id=session_id).aggregate(last=Max("seq"))["last"] or 0
    first_seq = opening[0]["seq"] if opening else last_event + 1
    if agent is None or failure is not None:
        return TurnPlan(
            session_id=session_id, agent_slug=agent.slug if agent else "", title=session.title, user_message_seq=0,
            user_text="", assistant_message_id=message_id, first_event_seq=first_seq,
            request=LoopRequest(model=agent.model if agent else None, messages=[]),  # never called
            resume=resume, opening_frames=opening,
        )  # fmt: skip
    limits = turn_catalog.budget_limits(version, session.owner_id)
    budget = TurnBudget(user_id=session.owner_id, prices=agent.prices, limits=limits)
    tools = _tool_setup(agent, session_id, mcp_specs)
    # The model calls the turn made before it paused count against the agent's max_turns.
    made = sum(1 for m in stored if m.role == Message.Role.ASSISTANT and m.seq > _last_prompt_seq(stored))
    return TurnPlan(
        session_id=session_id,
        agent_slug=agent.slug,
        title=session.title,
        user_message_seq=0,
        user_text="",
        assistant_message_id=message_id,
        first_event_seq=first_seq,
        request=LoopRequest(
            model=agent.model,
            messages=[],  # the runner adds the calls' results to `resume.history`
            system=system,
            max_turns=max(0, agent.max_turns - made),
            before_model_call=budget.before_model_call,
            approval=approval_gate(agent),
        ),
        tools=tools,
        budget=budget,
        resume=resume,
        opening_frames=opening,
    )


def _last_prompt_seq(stored: list[Message]) -> int:
    """The seq of the user's message that started the turn (one with text, not tool results)."""
    for message in reversed(stored):
        if message.role == Message.Role.USER and any(
            isinstance(b, dict) and b.get("type") == "text" for b in message.content or []
        ):
            return message.seq
    return 0


def _text_of(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(b.get("text", "") for b in content if isinstance(b, dict))
    return ""


def _refusal_text(approval: Approval | None) -> str:
    """What the model reads for a held call that did not run."""
    if approval is None:
        return "This tool call was not run: it needed the user's approval."
    if approval.status == Approval.Status.EXPIRED:
        return "This tool call was not run: the user did not approve it in time (the approval expired)."
    reason = f" Their reason: {approval.reason}" if approval.reason else ""
    return f"The user denied this tool call; it was not run.{reason}"


def tool_approval(approval: Approval) -> ToolApproval:
    """A decided approval as its tool call's audit event records it."""
    decision = {Approval.Status.ALLOWED: "allow", Approval.Status.DENIED: "deny"}.get(approval.status, "expired")
    by = approval.decided_by
    return ToolApproval(decision, by.pk if by else None, by.email if by else "", approval.decided_at, approval.reason)


def denial_over_api(call: ToolCall) -> ToolOutcome:
    """For surfaces where no one can approve mid-request (`/v1`): the held call is refused at once."""
    return ToolOutcome(
        call.id,
        f"The tool {call.name} needs the user's approval, which this API can't ask for; it was not run. "
        "Use the assistant's websocket, run API or chat page to approve it.",
        is_error=True,
    )


# --- expiry ---------------------------------------------------------------------------------------


def approvals_expire(limit: int = 100) -> list[tuple[list[dict[str, Any]], TurnPlan | None]]:
    """Deny as expired the pending approvals past `expires_at`; per message settled: (stored
    `approval_decision` frames, the resumed turn's plan or None)."""
    now = timezone.now()
    due = (
        Approval.objects.filter(status=Approval.Status.PENDING, expires_at__lte=now)
        .values_list("message_id", "session_id")
        .distinct()[:limit]
    )
    settled = []
    for message_id, session_id in list(due):
        with transaction.atomic():
            UserAgentSession.objects.select_for_update().filter(pk=session_id).first()
            expired = list(
                Approval.objects.select_for_update().filter(
                    message_id=message_id, status=Approval.Status.PENDING, expires_at__lte=now
                )
            )
            frames = []
            for approval in expired:
                approval.status, approval.decided_at = Approval.Status.EXPIRED, now
                approval.save(update_fields=["status", "decided_at"])
                frames.append(_decision_event(approval, now))
            if not frames:
                continue
            pending = Approval.objects.filter(message_id=message_id, status=Approval.Status.PENDING).exists()
            plan = None if pending else _claim_and_plan(session_id, message_id, opening=frames)
        settled.append((frames, plan))
    return settled
