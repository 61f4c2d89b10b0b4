"""Planning a turn: one transaction that decides whether it may run and stores what starts it.

In that transaction: the user's row (locked on PostgreSQL, so one user's starts take turns and a burst
can't all count the same running few; SQLite's IMMEDIATE transactions serialise them anyway), which
must still be active, and the catalog's version; the user's running answers against
ASSISTANT_MAX_CONCURRENT_TURNS_PER_USER; the agent as this process resolved it at that version
(assistant/runs/catalog.py); the user's budgets; then the session (new, or the existing one, locked),
the user's message with any earlier ones a client sent (`/v1`), the assistant's `streaming` message
and the turn's `session` event. A fixed number of statements whatever the catalog holds:
assistant/tests/runs/test_turn_statements.py counts them.
"""

from __future__ import annotations

import asyncio
import dataclasses
import weakref
from dataclasses import dataclass
from typing import Any, Iterable

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from agents.catalog import catalog_version
from agents.models import Message, UserAgentSession
from agents.workspaces import workspace_ensure
from assistant.engine import ApprovalGate, LoopRequest
from assistant.runs.statements import (
    events_insert,
    messages_insert,
    running_turns,
    session_insert,
    session_messages,
    session_turn_row,
    user_turn_row,
)
from assistant.runs.catalog import AgentRuntime, turn_catalog
from assistant.runs.history import api_messages
from assistant.runs.sweeps import stale_turns_settle
from assistant.tools.toolset import ToolSetup, approval_required_for
from config.errors import CodedError
from connections.services import connection_refresh
from connections.turns import ConnectionRequired, RefreshNeeded, specs_for_user
from config.threads import run_sync
from usage.services import BudgetExceeded, TurnBudget, budget_check

STREAMING = Message.Status.STREAMING
AWAITING = Message.Status.AWAITING_APPROVAL


class TurnRefused(CodedError):
    """A turn (or a stop/resume) that can't be done; `code` is stable, `message` is for people,
    `field` the input at fault when one is (`custom_properties`)."""

    def __init__(self, code: str, message: str, *, field: str | None = None, details: dict | None = None):
        super().__init__(code, message)
        self.field = field
        self.details = details  # more for clients (`connection_required`: the integration, its connect URL)


@dataclass
class TurnPlan:
    session_id: int
    agent_slug: str
    title: str
    user_message_seq: int
    user_text: str
    assistant_message_id: int
    # The turn's first event, `session`, stored with the plan: the runner publishes it and goes on
    # from the next seq.
    first_event_seq: int
    request: LoopRequest
    # Images the user's message carries (an API client's): the `session` event counts them, for the
    # pages that show the message from its events.
    user_images: int = 0
    # A turn run again (regenerate / edit): the seq from which the session's messages were removed.
    replaced_from_seq: int | None = None
    # The agent's tools, opened by the runner in its own task (MCP servers can't be shared across
    # tasks) and closed when the turn ends. None or empty: `request.tools` as given (tests set it).
    tools: ToolSetup | None = None
    budget: TurnBudget | None = None  # prices the turn's messages (usage/services.py)
    # A turn resumed after its approvals were decided (runs/approvals.py): what it goes on from, and
    # the frames stored with its plan (the decisions), published first instead of `session`.
    resume: Any = None
    opening_frames: list[dict[str, Any]] | None = None
    # The surface that started it (a label of the turn metrics): websocket, sse, run, openai; a turn resumed
    # after approvals counts as `run` unless its surface says otherwise.
    transport: str = "run"

    def session_event(self) -> dict[str, Any]:
        user_message: dict[str, Any] = {"seq": self.user_message_seq, "text": self.user_text}
        if self.user_images:
            user_message["images"] = self.user_images
        event = {"agent": self.agent_slug, "title": self.title, "user_message": user_message}
        if self.replaced_from_seq is not None:  # clients drop what they show from this seq on
            event["replaced_from_seq"] = self.replaced_from_seq
        return event

    def opening(self) -> list[dict[str, Any]]:
        """The frames the runner publishes first, stored with the plan from `first_event_seq` on."""
        if self.opening_frames is not None:
            return self.opening_frames
        return [{"type": "session", "session_id": self.session_id, "seq": self.first_event_seq, **self.session_event()}]


@dataclass(frozen=True)
class _LockedSession:
    id: int
    agent_id: int
    title: str
    custom_properties: dict[str, Any]
    version_id: int | None
    last_message_seq: int
    last_event_seq: int
    streaming: bool
    awaiting: bool = False  # tool calls of its last turn wait for the user's decisions


def _user_may_start(user_id: int) -> int:
    """Lock the user's row; refuse a deactivated user (deactivation in another process closes their
    sockets only where the channel layer reaches, docs/rest-api.md); the catalog's version."""
    row = user_turn_row(user_id)
    if row is None or not row[0]:
        raise TurnRefused("account_inactive", "This account is deactivated; its answers can't run.")
    return row[1] if row[1] is not None else catalog_version()


def _check_concurrent_turns(user_id: int) -> None:
    """At most ASSISTANT_MAX_CONCURRENT_TURNS_PER_USER turns of one user run at once, whichever
    processes run them (answers `streaming` and written to lately; agents.Message's partial index)."""
    fresh_after = timezone.now() - timezone.timedelta(seconds=settings.ASSISTANT_STALE_TURN_AFTER)
    running = running_turns(user_id, fresh_after)
    limit = settings.ASSISTANT_MAX_CONCURRENT_TURNS_PER_USER
    if running >= limit:
        raise TurnRefused(
            "too_many_turns", f"You already have {running} answers running (at most {limit}); stop one or wait for it."
        )


def _session_locked(user_id: int, session_id: int) -> _LockedSession:
    """The user's session, locked (one turn at a time), with what the turn needs of its rows."""
    row = session_turn_row(user_id, session_id, streaming=STREAMING, awaiting=AWAITING)
    if row is None:
        raise TurnRefused("not_found", "No such session.")
    pk, agent_id, title, properties, version_id, last_message, last_event, streaming_id, awaiting_id = row
    return _LockedSession(pk, agent_id, title, properties or {}, version_id, last_message or 0, last_event or 0,
                          streaming_id is not None, awaiting_id is not None)  # fmt: skip


def _settle_stale_turn(session: _LockedSession) -> None:
    """A `streaming` answer whose runner stopped beating (its process died) is closed as interrupted
    (as the periodic sweep would); a live one means a turn is running. Rare: the session had one."""
    stale_turns_settle(session_id=session.id)
    if Message.objects.filter(session_id=session.id, status=STREAMING).exists():
        raise TurnRefused("turn_in_progress", "A turn is already running in this session; stop it or wait for it.")


def _budget(version: int, user_id: int, agent: AgentRuntime) -> TurnBudget:
    limits = turn_catalog.budget_limits(version, user_id)
    try:
        budget_check(user_id, limits=limits)
    except BudgetExceeded as exc:
        raise TurnRefused(exc.code, exc.message) from exc
    return TurnBudget(user_id=user_id, prices=agent.prices, limits=limits)


def turn_begin(**kwargs: Any) -> TurnPlan:
    """`_turn_begin` (below), with the user's connections' tokens refreshed first when they are about to
    expire (issue 29): outside the turn's transaction (a token request takes a round trip), each under
    its connection's row lock, then the turn planned again with what they hold now."""
    kwargs["history"] = list(kwargs.get("history", ()))  # read again by the second attempt
    try:
        return _turn_begin(**kwargs)
    except RefreshNeeded as needed:
        for connection_id in needed.connection_ids:
            connection_refresh(connection_id=connection_id)
        return _turn_begin(**kwargs, refresh_connections=False)


def _turn_begin(
    *,
    user,
    text: str,
    agent_slug: str | None = None,
    agent_id: int | None = None,
    session_id: int | None = None,
    custom_properties: dict[str, Any] | None = None,
    title: str | None = None,
    history: Iterable[tuple[str, list[dict[str, Any]]]] = (),
    content: list[dict[str, Any]] | None = None,
    refresh_connections: bool = True,
    replace_last: bool = False,
) -> TurnPlan:
    """Plan the next turn of the user's session `session_id`, or of a new session with the agent
    `agent_slug` (the organization's, else the user's own) or `agent_id` (a built-in lookup's), with
    `custom_properties`, a `title` (default: the message's start) and the earlier messages a client
    sent, `history`: (role, blocks) pairs. `content`: the user message's blocks when it is more than
    `text` (an API client's images, or the results of its own tools, which then are the whole message
    and `text` may be empty). `replace_last`: the session's last exchange (its last message of the
    user's and everything after it) is removed and the turn runs again, with `text` (an edit) or, None,
    the removed message's text (regenerate). Raises TurnRefused."""
    if text is not None or not replace_last:
        text = (text or "").strip()
        if not text and not content:
            raise TurnRefused("invalid", "The message is empty.")
        if len(text) > settings.ASSISTANT_MAX_MESSAGE_CHARS:
            raise TurnRefused("invalid", f"The message is longer than {settings.ASSISTANT_MAX_MESSAGE_CHARS} characters.")
    if replace_last and session_id is None:
        raise TurnRefused("invalid", "Give `session_id`: only a session's last exchange can be run again.")
    with transaction.atomic():
        version = _user_may_start(user.pk)
        _check_concurrent_turns(user.pk)
        if session_id is None:
            if agent_id is not None:
                agent = turn_catalog.agent(version, agent_id)
            else:
                agent = turn_catalog.agent_for(version, user_id=user.pk, slug=agent_slug or "")
            if agent is None or not agent.is_active:
                raise TurnRefused("not_found", f"No active agent with slug {agent_slug!r}.")
            session = None
            variables = {} if custom_properties is None else custom_properties
            if not isinstance(variables, dict):
                raise TurnRefused("invalid", "Custom properties must be a JSON object.", field="custom_properties")
            problems = agent.custom_properties_problems(variables)
            if problems:
                raise TurnRefused("invalid", "; ".join(problems), field="custom_properties")
        else:
            session = _session_locked(user.pk, session_id)
            agent = turn_catalog.agent(version, session.agent_id)
            if agent is None or not agent.is_active:
                raise TurnRefused("agent_unavailable", "This session's agent is no longer available.")
            if session.streaming:
                _settle_stale_turn(session)
                session = _session_locked(user.pk, session_id)  # the settled turn stored an event
            if session.awaiting:
                raise TurnRefused(
                    "approval_pending",
                    "Tool calls of this session's last answer wait for your decision; allow or deny them first.",
                )
            variables = session.custom_properties
        if agent.refusal is not None:
            raise TurnRefused(*agent.refusal)
        if agent.tools_problem is not None:
            raise TurnRefused("agent_unavailable", agent.tools_problem)
        mcp_specs = _user_mcp_specs(agent, user.pk, refresh=refresh_connections)
        budget = _budget(version, user.pk, agent)
        try:
            system = agent.system_prompt(variables)
        except ValidationError as exc:  # the agent's prompt needs variables this session lacks
            raise TurnRefused("invalid", "; ".join(exc.messages)) from exc
        now = timezone.now()
        replaced_from_seq = None
        if session is None:
            title = (title if title is not None else text[:80])[:255]
            session_id = session_insert(
                owner_id=user.pk, agent_id=agent.id, title=title, custom_properties=variables,
                version_id=agent.version_id, now=now,
            )  # fmt: skip
            session = _LockedSession(session_id, agent.id, title, variables, agent.version_id, 0, 0, False)
            stored: list[Message] = []
        else:
            stored = session_messages(session.id)
            if replace_last:
                text, content, replaced_from_seq, stored = _last_exchange_removed(session.id, stored, text)
            changes = {"updated_at": now, "agent_version_id": agent.version_id}
            if not session.title:  # a session made empty (REST, or for an upload) takes its first message's start
                changes["title"] = title = text[:80]
                session = dataclasses.replace(session, title=title)
            UserAgentSession.objects.filter(pk=session.id).update(**changes)
        seq = session.last_message_seq
        new = [Message(session_id=session.id, seq=(seq := seq + 1), role=role, content=blocks, created_at=now,
                       updated_at=now) for role, blocks in history if blocks]  # fmt: skip
        user_message = Message(session_id=session.id, seq=seq + 1, role=Message.Role.USER,
                               content=content or [{"type": "text", "text": text}], created_at=now,
                               updated_at=now)  # fmt: skip
        answer = Message(session_id=session.id, seq=seq + 2, role=Message.Role.ASSISTANT, content=[],
                         status=STREAMING, model=agent.model.model, created_at=now, updated_at=now)  # fmt: skip
        messages_insert([*new, user_message, answer])
        tools = _tool_setup(agent, session.id, mcp_specs)
        plan = TurnPlan(
            session_id=session.id,
            agent_slug=agent.slug,
            title=session.title,
            user_message_seq=user_message.seq,
            user_text=text,
            user_images=len(_images(user_message)),
            assistant_message_id=answer.pk,
            first_event_seq=session.last_event_seq + 1,
            request=LoopRequest(
                model=agent.model,
                messages=api_messages([*stored, *new, user_message]),
                system=system,
                max_turns=agent.max_turns if not tools.empty else 1,
                before_model_call=budget.before_model_call,
                approval=approval_gate(agent),
            ),
            tools=tools,
            budget=budget,
            replaced_from_seq=replaced_from_seq,
        )
        events_insert([(session.id, plan.first_event_seq, "session", plan.session_event())], now)
    return plan


def _last_exchange_removed(
    session_id: int, stored: list[Message], text: str | None
) -> tuple[str, list[dict[str, Any]] | None, int, list[Message]]:
    """Remove the session's last message of the user's (one with text or images, not tool results) and all
    after it. Returns its text unless `text` replaces it; its blocks when it had images (kept, the new text in
    place of the old: a regenerated or edited question still shows the model its images), else None; its seq;
    and the messages kept."""
    prompts = [m for m in stored if m.role == Message.Role.USER and (m.text.strip() or _images(m))]
    if not prompts:
        raise TurnRefused("not_found", "This session has no message of yours to answer again.")
    prompt = prompts[-1]
    Message.objects.filter(session_id=session_id, seq__gte=prompt.seq).delete()  # its approvals go with it
    text = text if text is not None else prompt.text.strip()
    images = _images(prompt)
    content = None
    if images:
        content = ([{"type": "text", "text": text}] if text else []) + images
    return text, content, prompt.seq, [m for m in stored if m.seq < prompt.seq]


def _images(message: Message) -> list[dict[str, Any]]:
    return [b for b in message.content if isinstance(b, dict) and b.get("type") == "image"]


def approval_gate(agent: AgentRuntime, decide=None) -> ApprovalGate | None:
    """The agent's approval policy for its turns; None when no tool of it needs approval."""
    required = approval_required_for(agent.tools.approval_required) if agent.tools is not None else None
    return ApprovalGate(required, decide) if required is not None else None


def _user_mcp_specs(agent: AgentRuntime, user_id: int, *, refresh: bool) -> tuple:
    """The agent's MCP servers with the user's own tokens where its integrations need them (issue 29).
    Refused before the model when the user has no usable connection; RefreshNeeded (turn_begin)."""
    if agent.tools is None:
        return ()
    try:
        return specs_for_user(user_id=user_id, specs=agent.tools.mcp_specs, personal=agent.tools.personal,
                              refresh=refresh)  # fmt: skip
    except ConnectionRequired as missing:
        raise TurnRefused("connection_required", missing.message, details=missing.details()) from None


def _tool_setup(agent: AgentRuntime, session_id: int, mcp_specs: tuple) -> ToolSetup:
    tools = agent.tools
    if tools is None or tools.empty:
        return ToolSetup()
    return ToolSetup(
        mcp_specs=mcp_specs,
        allowed_tools=tools.allowed_tools,
        workspace=workspace_ensure(session_id) if tools.files else None,
        shell=tools.shell,
    )


# Turn plans waiting on the database thread at once; the others wait here. A thousand sockets
# starting turns together queued a thousand plans (~5 ms each) on that one thread, and the running
# turns' writes waited behind them all; now a write waits behind at most this many.
TURN_BEGINS_AT_ONCE = 2
_turn_begin_slots: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()  # event loop → semaphore


async def turn_begin_async(**kwargs: Any) -> TurnPlan:
    """`turn_begin` from async code, on the database thread, a few at a time."""
    loop = asyncio.get_running_loop()
    slots = _turn_begin_slots.get(loop)
    if slots is None:
        slots = _turn_begin_slots[loop] = asyncio.Semaphore(TURN_BEGINS_AT_ONCE)
    async with slots:
        return await run_sync(turn_begin, **kwargs)
