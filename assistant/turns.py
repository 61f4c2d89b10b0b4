"""Running one conversational turn of a session, for any transport.

A turn is planned in one transaction (`turn_begin`: the user's message stored, an assistant message
opened as `streaming`, one turn at a time per session), then run as an asyncio task owned by the
process, not by the socket that asked for it: a client that reloads, or reconnects to another
process, finds the answer still coming.

Every event is written to the database *before* it is published to the session's channel-layer
group (persist, then publish). So a client that subscribes and then reads what it missed from the
database can neither miss an event nor see one twice: it drops live events it already read.
Text deltas are coalesced: the first goes out at once, the next ones at most every
ASSISTANT_FLUSH_INTERVAL seconds, one database write and one group message each. The writes of all
the turns of a process go through one `TurnWriter`, many to a transaction (group commit).

Stopping works from any process: the stop request goes to the session's control group, the runner
cancels the upstream stream and keeps the partial answer as `stopped`.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
import weakref
from dataclasses import dataclass, field
from typing import Any

from channels.db import database_sync_to_async
from channels.layers import get_channel_layer
from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import Max
from django.utils import timezone

from agents import selectors as agent_selectors
from agents import services as agent_services
from agents.models import Message, UserAgentSession
from agents.versions import session_agent_version_set
from assistant.engine import (
    LoopFinished,
    LoopRequest,
    ModelCallFinished,
    ModelCallStarted,
    ModelSettings,
    TextDelta,
    ThinkingDelta,
    ToolOutcome,
    ToolResults,
    ToolUseRequested,
    Usage,
    UsageReported,
    agent_loop,
)
from assistant.history import api_messages
from assistant.llm import LLMError
from assistant.models import TurnEvent
from assistant.mcp_servers import McpConfigError, McpStartError
from assistant.sweeps import stale_turns_settle
from assistant.tools import ToolSetup, open_agent_tools, tool_setup_for
from audit.services import tool_calls_record
from config.errors import CodedError
from usage.services import BudgetExceeded, TurnBudget, message_usage_stored, turn_budget

logger = logging.getLogger(__name__)

TOOL_OUTPUT_PREVIEW = 500  # characters of a tool result sent in a `tool_result` event


def session_group(session_id: int) -> str:
    return f"assistant.session.{session_id}"


def control_group(session_id: int) -> str:
    return f"assistant.control.{session_id}"


class TurnRefused(CodedError):
    """A turn (or a stop/resume) that can't be done; `code` is stable, `message` is for people."""


class TurnToolsUnavailable(CodedError):
    """An MCP server of the agent did not start: the turn ends with this error (code
    `tool_unavailable`) rather than run without tools the agent's instructions may count on."""

    def __init__(self, message: str):
        super().__init__("tool_unavailable", message)


# --- planning (sync, one transaction) -----------------------------------------------------------


@dataclass
class TurnPlan:
    session_id: int
    agent_slug: str
    title: str
    user_message_seq: int
    user_text: str
    assistant_message_id: int
    first_event_seq: int
    request: LoopRequest
    # The agent's tools, opened by the runner in its own task (MCP servers can't be shared across
    # tasks) and closed when the turn ends. None or empty: `request.tools` as given (tests set it).
    tools: ToolSetup | None = None
    budget: TurnBudget | None = None  # prices the turn's messages (usage/services.py)


def _settle_stale_turns(session: UserAgentSession) -> None:
    """A `streaming` message whose runner stopped beating (its process died) is closed as
    interrupted (as the periodic sweep would); a live one means a turn is running."""
    stale_turns_settle(session_id=session.pk)
    if session.messages.filter(status=Message.Status.STREAMING).exists():
        raise TurnRefused("turn_in_progress", "A turn is already running in this session; stop it or wait for it.")


def _check_concurrent_turns(user) -> None:
    """At most ASSISTANT_MAX_CONCURRENT_TURNS_PER_USER turns of one user run at once, whichever
    processes run them. Called first in turn_begin's transaction: the user's row lock (PostgreSQL;
    SQLite serialises writers anyway) makes the user's starts take turns, held until the new
    turn's `streaming` message is committed, so a burst can't all count the same few."""
    get_user_model().objects.select_for_update().filter(pk=user.pk).first()
    fresh_after = timezone.now() - timezone.timedelta(seconds=settings.ASSISTANT_STALE_TURN_AFTER)
    running = (
        Message.objects.filter(session__owner_id=user.pk, status=Message.Status.STREAMING, updated_at__gte=fresh_after)
        .values("session_id")
        .distinct()
        .count()
    )
    limit = settings.ASSISTANT_MAX_CONCURRENT_TURNS_PER_USER
    if running >= limit:
        raise TurnRefused(
            "too_many_turns", f"You already have {running} answers running (at most {limit}); stop one or wait for it."
        )


def model_settings_for(agent, *, user=None) -> ModelSettings:
    """The agent's LLM config, else the default config (the agent owner's, else `user`'s, else the
    organization's), else the ANTHROPIC_* settings (OPENAI_* for an openai config's empty fields)."""
    return model_settings_from(agent_selectors.llm_config_for_agent(agent, user=user))


def model_settings_from(config: agent_selectors.ResolvedLLMConfig) -> ModelSettings:
    return ModelSettings(
        model=config.model,
        api_key=config.api_key,
        base_url=config.base_url or None,
        max_tokens=config.max_tokens,
        guard_egress=config.user_endpoint,
        provider=config.provider,
        temperature=config.temperature,
    )


def turn_begin(
    *,
    user,
    text: str,
    agent_slug: str | None = None,
    session_id: int | None = None,
    custom_properties: dict[str, Any] | None = None,
) -> TurnPlan:
    text = (text or "").strip()
    if not text:
        raise TurnRefused("invalid", "The message is empty.")
    if len(text) > settings.ASSISTANT_MAX_MESSAGE_CHARS:
        raise TurnRefused("invalid", f"The message is longer than {settings.ASSISTANT_MAX_MESSAGE_CHARS} characters.")
    with transaction.atomic():
        _check_concurrent_turns(user)
        if session_id is not None:
            session = (
                UserAgentSession.objects.select_for_update()
                .select_related("agent")
                .filter(pk=session_id, owner=user)
                .first()
            )
            if session is None:
                raise TurnRefused("not_found", "No such session.")
            if session.agent is None or not session.agent.is_active:
                raise TurnRefused("agent_unavailable", "This session's agent is no longer available.")
        else:
            agent = agent_selectors.agent_get_by_slug(user=user, slug=agent_slug or "")
            if agent is None or not agent.is_active:
                raise TurnRefused("not_found", f"No active agent with slug {agent_slug!r}.")
            try:
                session = agent_services.session_create(
                    owner=user, agent=agent, title=text[:80], custom_properties=custom_properties or {}
                )
            except ValidationError as exc:
                raise TurnRefused("invalid", "; ".join(exc.messages)) from exc
            session = UserAgentSession.objects.select_for_update().select_related("agent").get(pk=session.pk)
        _settle_stale_turns(session)
        agent = session.agent
        unusable = agent_selectors.agent_unusable_reason(agent=agent)
        if unusable:
            raise TurnRefused("agent_unavailable", unusable)
        config = agent_selectors.llm_config_for_agent(agent, user=user)
        if config.user_endpoint and not config.api_key:
            raise TurnRefused(
                "not_configured",
                f"The LLM config “{config.config_name}” names its own base URL but has no API key of its own "
                "(the organization's key is only sent to the organization's endpoint); give it its own API key.",
            )
        model = model_settings_from(config)
        try:
            tools = tool_setup_for(agent, session_id=session.pk)
        except McpConfigError as exc:
            raise TurnRefused("agent_unavailable", f"This agent's tools can't be used: {exc}") from exc
        try:
            budget = turn_budget(user_id=user.pk, config_id=config.config_id)
        except BudgetExceeded as exc:
            raise TurnRefused(exc.code, exc.message) from exc
        try:
            system = agent_services.agent_system_prompt(agent=agent, variables=session.custom_properties or {})
        except ValidationError as exc:  # the agent's prompt needs variables this session lacks
            raise TurnRefused("invalid", "; ".join(exc.messages)) from exc
        user_message = agent_services.message_append(
            session=session, role=Message.Role.USER, content=[{"type": "text", "text": text}]
        )
        history = api_messages(session.messages.order_by("seq"))
        assistant_message = agent_services.message_append(
            session=session, role=Message.Role.ASSISTANT, content=[], status=Message.Status.STREAMING, model=model.model
        )
        last_seq = TurnEvent.objects.filter(session=session).aggregate(last=Max("seq"))["last"] or 0
        UserAgentSession.objects.filter(pk=session.pk).update(updated_at=timezone.now())
        session_agent_version_set(session)
    return TurnPlan(
        session_id=session.pk,
        agent_slug=agent.slug,
        title=session.title,
        user_message_seq=user_message.seq,
        user_text=text,
        assistant_message_id=assistant_message.pk,
        first_event_seq=last_seq + 1,
        request=LoopRequest(
            model=model,
            messages=history,
            system=system,
            max_turns=agent.max_turns if not tools.empty else 1,
            before_model_call=budget.before_model_call,
        ),
        tools=tools,
        budget=budget,
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
        return await database_sync_to_async(turn_begin)(**kwargs)


# --- persistence (sync; called through database_sync_to_async) --------------------------------


@dataclass
class _Write:
    """One runner's flush: its new events and its message's changed fields."""

    session_id: int
    events: list[tuple[int, str, dict[str, Any]]]  # (seq, type, data)
    message_id: int | None
    message_fields: dict[str, Any]


def _persist(writes: list[_Write]) -> None:
    """Store `writes` in one transaction: one insert of all their events, one update per message
    (a message's queued updates merged in order, the last value of a field winning)."""
    with transaction.atomic():
        events = [
            TurnEvent(session_id=write.session_id, seq=seq, type=kind, data=data)
            for write in writes
            for seq, kind, data in write.events
        ]
        if events:
            TurnEvent.objects.bulk_create(events)
        fields_by_message: dict[int, dict[str, Any]] = {}
        for write in writes:
            if write.message_id is not None and write.message_fields:
                fields_by_message.setdefault(write.message_id, {}).update(write.message_fields)
        now = timezone.now()
        for message_id, fields in fields_by_message.items():
            message_usage_stored(message_id, fields)  # the usage counters, in this transaction
            Message.objects.filter(pk=message_id).update(**fields, updated_at=now)


def _persist_batch(writes: list[_Write]) -> list[Exception | None]:
    """Store `writes` together; returns each one's error (None: stored).

    One bad write (a conflicting seq, say) fails the whole transaction: then each is written alone,
    so only its own turn fails. A session's writes after a failed one fail with it, so the events
    stored for a session never have a gap."""
    try:
        _persist(writes)
    except Exception as exc:  # noqa: BLE001 - handed to the callers, who end their turns with it
        if len(writes) == 1:
            return [exc]
        logger.warning("A batch of %d turn writes failed (%s); writing them one by one", len(writes), exc)
    else:
        return [None] * len(writes)
    errors: list[Exception | None] = []
    failed: dict[int, Exception] = {}  # session id → its first error
    for write in writes:
        error = failed.get(write.session_id)
        if error is None:
            try:
                _persist([write])
            except Exception as exc:  # noqa: BLE001 - as above
                error = failed[write.session_id] = exc
        errors.append(error)
    return errors


def _touch_streaming_message(message_id: int) -> None:
    Message.objects.filter(pk=message_id, status=Message.Status.STREAMING).update(updated_at=timezone.now())


def _append_message(session_id: int, **fields) -> int:
    session = UserAgentSession.objects.get(pk=session_id)
    return agent_services.message_append(session=session, **fields).pk


# --- the writer: every turn's flushes, one transaction at a time -------------------------------


class TurnWriter:
    """Stores the flushes of all the turns a process runs, many per transaction ("group commit").

    `database_sync_to_async` runs a process's database calls on one thread, one after another: with
    each of a thousand streams writing its own flush in its own transaction, the flushes queued up
    behind each other and deltas arrived seconds late (bench/RESULTS.md). A runner hands its flush
    to the writer of its event loop and waits; the writer takes everything queued and stores it in
    one call, one transaction. No timer: a lone flush is written at once, and while one batch is
    being written the next one gathers.

    A flush that was handed over is stored even if its runner is cancelled while waiting (a stop
    mid-write leaves nothing half done), and before any flush of the same turn queued after it.
    """

    def __init__(self) -> None:
        self.queue: list[tuple[_Write, asyncio.Future]] = []
        self.task: asyncio.Task | None = None

    async def write(self, write: _Write) -> None:
        """Store `write`; returns once it is committed, or raises the error that kept it out."""
        done = asyncio.get_running_loop().create_future()
        self.queue.append((write, done))
        if self.task is None or self.task.done():
            self.task = asyncio.create_task(self._drain(), name="assistant-turn-writer")
        await asyncio.shield(done)

    async def _drain(self) -> None:
        while self.queue:
            batch, self.queue = self.queue, []
            try:
                errors = await database_sync_to_async(_persist_batch)([write for write, _ in batch])
            except asyncio.CancelledError:  # the process is stopping: nobody may wait forever
                for _, done in batch + self.queue:
                    done.cancel()
                self.queue = []
                raise
            except Exception as exc:  # noqa: BLE001 - the thread hop itself failed: each caller gets it
                errors = [exc] * len(batch)
            for (_, done), error in zip(batch, errors):
                if done.done():
                    continue
                if error is None:
                    done.set_result(None)
                else:
                    done.set_exception(error)


_writers: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()  # event loop → its writer


def _turn_writer() -> TurnWriter:
    loop = asyncio.get_running_loop()
    writer = _writers.get(loop)
    if writer is None:
        writer = _writers[loop] = TurnWriter()
    return writer


# --- running ------------------------------------------------------------------------------------

_running: dict[int, TurnRunner] = {}  # session id → runner; also keeps the tasks referenced


def running_turn(session_id: int) -> TurnRunner | None:
    return _running.get(session_id)


@dataclass
class _Pending:
    text: str = ""
    thinking: str = ""


@dataclass
class TurnRunner:
    plan: TurnPlan
    listeners: list[asyncio.Queue] = field(default_factory=list)  # same-process readers (SSE)
    # Usage of the model call in progress as reported so far (None between calls), and of the
    # turn's finished calls: a stopped or failed answer keeps the tokens it already cost.
    call_usage: Usage | None = field(default=None, init=False)
    finished_usage: Usage = field(default_factory=Usage, init=False)
    model_calls: int = field(default=0, init=False)  # started so far (`turns` of a stopped result)

    def __post_init__(self) -> None:
        self.session_id = self.plan.session_id
        self.next_seq = self.plan.first_event_seq
        self.message_id: int | None = self.plan.assistant_message_id
        self.text = ""
        self.thinking = ""
        self.pending = _Pending()
        self.last_flush = 0.0  # last write of any event (heartbeat)
        # Last write of coalesced deltas. Kept apart from last_flush: the `session` event is written
        # just before the model's first delta, and must not make that delta wait a flush interval
        # (it did: ~45 ms added to every first token, bench/RESULTS.md).
        self.last_delta_flush = 0.0
        self.flush_timer: asyncio.Task | None = None
        self.lock = asyncio.Lock()
        self.layer = get_channel_layer()
        self.stop_requested = False
        self.pending_calls: dict[str, str] = {}  # id → name of tool calls running now
        self.finished = False  # its `result` is being sent: too late to stop it
        self.loop_task: asyncio.Task | None = None
        self.task: asyncio.Task | None = None
        self.done = asyncio.Event()

    # -- lifecycle

    def start(self) -> asyncio.Task:
        _running[self.session_id] = self
        self.task = asyncio.create_task(self._run(), name=f"turn-{self.session_id}")
        return self.task

    def request_stop(self) -> None:
        if self.finished:
            return
        self.stop_requested = True
        if self.loop_task is not None and not self.loop_task.done():
            self.loop_task.cancel()

    async def _run(self) -> None:
        await _stop_listener(self.layer).watch(self.session_id)
        heartbeat = asyncio.create_task(self._heartbeat())
        try:
            try:
                await self._emit(
                    "session",
                    {
                        "agent": self.plan.agent_slug,
                        "title": self.plan.title,
                        "user_message": {"seq": self.plan.user_message_seq, "text": self.plan.user_text},
                    },
                )
                self.loop_task = asyncio.create_task(self._consume())
                await self.loop_task
            except asyncio.CancelledError:
                # We were cancelled ourselves (a stop cancels only the model loop): process shutdown.
                if asyncio.current_task().cancelling():
                    await asyncio.shield(self._finish_error("interrupted", "The server is shutting down."))
                    raise
                await self._finish_stopped()
            except LLMError as exc:
                await self._finish_error(exc.code, exc.message)
            except TurnToolsUnavailable as exc:
                logger.warning("Turn of session %s: %s", self.session_id, exc.message)
                await self._finish_error(exc.code, exc.message)
            except Exception:
                logger.exception("Turn of session %s failed", self.session_id)
                await self._finish_error("internal_error", "The answer failed because of an internal error.")
        finally:
            heartbeat.cancel()
            await _stop_listener(self.layer).unwatch(self.session_id)
            if self.flush_timer:
                self.flush_timer.cancel()
            _running.pop(self.session_id, None)
            self.done.set()

    async def _consume(self) -> None:
        setup = self.plan.tools
        if setup is None or setup.empty or self.plan.request.tools is not None:
            await self._relay(self.plan.request)
            return
        try:
            async with open_agent_tools(setup) as tools:
                await self._relay(dataclasses.replace(self.plan.request, tools=tools))
        except McpStartError as exc:
            raise TurnToolsUnavailable(str(exc)) from None

    async def _relay(self, request: LoopRequest) -> None:
        async for event in agent_loop(request):
            match event:
                case TextDelta(text=text):
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
                    if turn > 1:
                        self.message_id = await database_sync_to_async(_append_message)(
                            self.session_id, role=Message.Role.ASSISTANT, content=[], status=Message.Status.STREAMING,
                            model=self.plan.request.model.model,
                        )  # fmt: skip
                        self.text = self.thinking = ""
                case ModelCallFinished():
                    self.call_usage = event.usage  # a stop while this is stored keeps the final count
                    await self._flush()
                    await self._persist_now([], self._finished_message_fields(event))
                    self.finished_usage.add(event.usage)
                    self.call_usage = None
                    calls = [b for b in event.content if b.get("type") == "tool_use"]
                    if event.stop_reason == "tool_use" and calls and request.tools is not None:
                        # The tools' results, `streaming` while they run: the turn still counts as
                        # running (one turn per session, the user's limit, the heartbeat), and a stop
                        # or failure answers each unfinished call here, so the next turn's history
                        # has a result for every tool_use.
                        self.pending_calls = {b["id"]: b["name"] for b in calls}
                        self.message_id = await database_sync_to_async(_append_message)(
                            self.session_id, role=Message.Role.USER, content=[], status=Message.Status.STREAMING
                        )
                case ToolResults(results=results):
                    names, self.pending_calls = self.pending_calls, {}
                    await database_sync_to_async(tool_calls_record)(
                        session_id=self.session_id, calls=[(names.get(r.tool_use_id, ""), r.is_error) for r in results],
                        source="turn",
                    )  # fmt: skip
                    await self._persist_now(
                        [], {"content": [r.as_block() for r in results], "status": Message.Status.COMPLETE}
                    )
                    self.message_id = None  # until the next model call opens its message
                    for result in results:
                        await self._emit("tool_result", self._tool_result_data(result, names.get(result.tool_use_id, "")))
                case LoopFinished():
                    self.finished = True
                    await self._emit(
                        "result",
                        {
                            "status": "complete",
                            "stop_reason": event.stop_reason,
                            "usage": event.usage.as_dict(),
                            "turns": event.turns,
                            "duration_ms": event.duration_ms,
                        },
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
        await self._persist_now([], {"content": [r.as_block() for r in results], "status": Message.Status.COMPLETE})
        for result in results:
            await self._emit("tool_result", self._tool_result_data(result, calls[result.tool_use_id]))
        return True

    async def _finish_stopped(self) -> None:
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
        await self._flush()
        answered = await self._answer_pending_calls(f"The turn ended before this tool finished: {message}")
        if answered or self.message_id is None:
            # The error goes on an assistant message of its own after the results (the finished
            # answer that asked for the tools stays as it was).
            self.message_id = await database_sync_to_async(_append_message)(
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

    # -- events

    def _partial_content(self) -> list[dict[str, Any]]:
        blocks: list[dict[str, Any]] = []
        if self.text:
            blocks.append({"type": "text", "text": self.text})
        return blocks

    async def _emit(self, kind: str, data: dict[str, Any]) -> None:
        """Flush pending deltas, then persist and publish one event, in order."""
        async with self.lock:
            frames = self._take_pending()
            frames.append(self._frame(kind, data))
            await self._persist_and_publish(frames, self._streaming_fields() if len(frames) > 1 else {})

    async def _flush(self) -> None:
        async with self.lock:
            frames = self._take_pending()
            if frames:
                await self._persist_and_publish(frames, self._streaming_fields())

    async def _schedule_flush(self) -> None:
        wait = settings.ASSISTANT_FLUSH_INTERVAL - (time.monotonic() - self.last_delta_flush)
        if wait <= 0:
            await self._flush()  # leading edge: the first delta after a quiet spell goes out at once
        elif self.flush_timer is None or self.flush_timer.done():
            self.flush_timer = asyncio.create_task(self._flush_later(wait))

    async def _flush_later(self, wait: float) -> None:
        await asyncio.sleep(wait)
        await self._flush()

    def _take_pending(self) -> list[dict[str, Any]]:
        frames = []
        if self.pending.thinking:
            self.thinking += self.pending.thinking
            frames.append(self._frame("thinking_delta", {"text": self.pending.thinking}))
        if self.pending.text:
            self.text += self.pending.text
            frames.append(self._frame("text_delta", {"text": self.pending.text}))
        self.pending = _Pending()
        if frames:
            self.last_delta_flush = time.monotonic()
        return frames

    def _streaming_fields(self) -> dict[str, Any]:
        return {"content": self._partial_content()}

    def _frame(self, kind: str, data: dict[str, Any]) -> dict[str, Any]:
        frame = {"type": kind, "session_id": self.session_id, "seq": self.next_seq, **data}
        self.next_seq += 1
        return frame

    async def _persist_now(self, frames: list[dict[str, Any]], message_fields: dict[str, Any]) -> None:
        async with self.lock:
            await self._persist_and_publish(frames, message_fields)

    async def _persist_and_publish(self, frames: list[dict[str, Any]], message_fields: dict[str, Any]) -> None:
        events = [(f["seq"], f["type"], {k: v for k, v in f.items() if k not in {"type", "session_id", "seq"}}) for f in frames]
        if self.plan.budget is not None:
            message_fields = self.plan.budget.priced(message_fields)
        # Stored before published; stored even if a stop cancels us meanwhile (see TurnWriter).
        await _turn_writer().write(_Write(self.session_id, events, self.message_id, message_fields))
        self.last_flush = time.monotonic()
        for frame in frames:
            for queue in self.listeners:
                queue.put_nowait(frame)
            await self.layer.group_send(session_group(self.session_id), {"type": "turn.event", "event": frame})
        if self.stop_requested and not self.finished and asyncio.current_task() is self.loop_task:
            # A stop that lands while channels-redis publishes can be swallowed by the Redis client
            # (the model loop then ran on, deaf to it): honour it here.
            raise asyncio.CancelledError()

    # -- background duties

    async def _heartbeat(self) -> None:
        """Keep the streaming message fresh while the model is silent, so it isn't taken for stale."""
        interval = settings.ASSISTANT_STALE_TURN_AFTER / 4
        while True:
            await asyncio.sleep(interval)
            if time.monotonic() - self.last_flush >= interval and self.message_id is not None:
                await database_sync_to_async(_touch_streaming_message)(self.message_id)


class _StopListener:
    """One channel per process, in the control group of every turn this process runs: a stop
    asked for on any process reaches the runner here. (One receive loop for all turns, rather
    than one blocked receive per turn.)"""

    def __init__(self, layer) -> None:
        self.layer = layer
        self.channel: str | None = None
        self.task: asyncio.Task | None = None

    async def watch(self, session_id: int) -> None:
        if self.channel is None:
            # The default prefix: channels-redis runs one receive loop for all of a process's channels.
            self.channel = await self.layer.new_channel()
        if self.task is None or self.task.done():
            self.task = asyncio.create_task(self._listen(), name="assistant-stop-listener")
        await self.layer.group_add(control_group(session_id), self.channel)

    async def unwatch(self, session_id: int) -> None:
        if self.channel is not None:
            await self.layer.group_discard(control_group(session_id), self.channel)

    async def _listen(self) -> None:
        while True:
            message = await self.layer.receive(self.channel)
            runner = _running.get(message.get("session_id"))
            if message.get("type") == "turn.stop" and runner is not None:
                runner.request_stop()


_stop_listeners: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()  # channel layer → listener


def _stop_listener(layer) -> _StopListener:
    listener = _stop_listeners.get(layer)
    if listener is None:
        listener = _stop_listeners[layer] = _StopListener(layer)
    return listener


async def turn_start(plan: TurnPlan) -> TurnRunner:
    runner = TurnRunner(plan)
    runner.start()
    return runner


# --- stop and resume ----------------------------------------------------------------------------


def _owned_session(user, session_id: int) -> UserAgentSession:
    session = UserAgentSession.objects.filter(pk=session_id, owner=user).first()
    if session is None:
        raise TurnRefused("not_found", "No such session.")
    return session


def turn_is_running(*, user, session_id: int) -> bool:
    session = _owned_session(user, session_id)
    return session.messages.filter(status=Message.Status.STREAMING).exists()


async def turn_stop(*, user, session_id: int) -> None:
    """Ask the runner of this session's turn to stop, whichever process it runs in."""
    if not await database_sync_to_async(turn_is_running)(user=user, session_id=session_id):
        raise TurnRefused("no_turn", "No turn is running in this session.")
    runner = running_turn(session_id)
    if runner is not None:
        runner.request_stop()
    else:
        await get_channel_layer().group_send(control_group(session_id), {"type": "turn.stop", "session_id": session_id})


def turn_events_after(*, user, session_id: int, after_seq: int | None, limit: int = 10_000) -> list[dict[str, Any]]:
    """Stored events of a session after `after_seq`; with None, those of its latest turn."""
    session = _owned_session(user, session_id)
    events = TurnEvent.objects.filter(session=session)
    if after_seq is None:
        latest_start = events.filter(type="session").aggregate(last=Max("seq"))["last"]
        if latest_start is None:
            return []
        after_seq = latest_start - 1
    return [event.as_frame() for event in events.filter(seq__gt=after_seq).order_by("seq")[:limit]]
