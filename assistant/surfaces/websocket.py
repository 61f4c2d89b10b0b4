"""The assistant's websocket, `/ws/assistant/`.

Client → server (JSON):
    {"type": "start", "message": "...", "agent": "<slug>"}              new session with that agent
    {"type": "start", "message": "...", "session_id": 12}               next turn of a session
    {"type": "stop", "session_id": 12}                                  stop the running turn
    {"type": "resume", "session_id": 12, "after_seq": 40}               events after seq 40, then live
    {"type": "resume", "session_id": 12}                                the latest turn from its start, then live
    {"type": "approve", "session_id": 12, "approval_id": "…", "decision": "allow"|"deny", "reason": "…"}
    {"type": "regenerate", "session_id": 12}                            the last answer again: the session's
                                                                        last message of yours and all after it
                                                                        are removed, and it runs again
    {"type": "edit", "session_id": 12, "message": "..."}                the same with that message's new text
    {"type": "ping"}
Server → client: the turn events (`session`, `text_delta`, `thinking_delta`, `tool_use`, `tool_result`,
`approval_request`, `approval_decision`, `result`, `error`), each with `session_id` and `seq` (a regenerated
or edited turn's `session` event carries `replaced_from_seq`: the messages from that seq on are gone); plus
`resumed` (after a replay: the last seq sent, whether a turn is running, the tool calls waiting for a
decision), `pong`, and `error` frames with `seq: null` for refused requests. A turn whose tool calls
wait for approval ends with a `result` of status `awaiting_approval`; the decision (from this socket,
another or REST) resumes it, its events coming on to every socket watching the session.

The socket only watches turns; it doesn't own them. Closing it leaves the turn running.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from django.conf import settings
from channels.generic.websocket import AsyncJsonWebsocketConsumer

import observability
from assistant import runs
from config import untrusted
from accounts.sockets import JWT_SUBPROTOCOL, socket_groups
from config.threads import run_sync

CLOSE_UNAUTHENTICATED = 4401
CLOSE_MESSAGE_TOO_BIG = 1009
TERMINAL_EVENTS = frozenset({"result", "error"})


def _error_frame(code: str, message: str, session_id: int | None = None) -> dict[str, Any]:
    return {"type": "error", "code": code, "message": message, "session_id": session_id, "seq": None}


def _int_field(content: dict[str, Any], name: str, *, required: bool) -> int | None:
    value = content.get(name)
    if value is None and not required:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= untrusted.MAX_DB_INT:
        raise runs.TurnRefused("invalid", f"`{name}` must be a non-negative integer (64-bit).")
    return value


class AssistantConsumer(AsyncJsonWebsocketConsumer):
    async def connect(self) -> None:
        self.user = self.scope.get("user")
        self.subscriptions: dict[int, int] = {}  # session id → last seq sent
        # Turns being watched and not finished yet: session id → when a frame of it was last sent.
        self.open_turns: dict[int, float] = {}
        # Frames go out in seq order, once: the gap watch and the channel-layer handler take turns.
        self.send_lock = asyncio.Lock()
        self.expiry: asyncio.Task | None = None
        self.gap_watch: asyncio.Task | None = None
        # Turns this socket started in this process: their runner's queue, read by a task of ours.
        self.own_turns: dict[int, tuple[runs.TurnRunner, asyncio.Queue, asyncio.Task]] = {}
        expires_at = self.scope.get("auth_expires_at")
        token_used = JWT_SUBPROTOCOL in (self.scope.get("subprotocols") or [])
        # Accept before refusing, so the client can read the close code (a refused handshake is opaque).
        await self.accept(subprotocol=JWT_SUBPROTOCOL if token_used else None)
        if not self.user or not self.user.is_authenticated:
            await self.close(code=CLOSE_UNAUTHENTICATED)
            return
        # Its user's group, and its browser session's for a cookie socket: ending those sessions
        # (password change, deactivation, logout) closes this socket, from any process.
        observability.websocket_opened()
        self.counted = True  # in conduit_websocket_connections until disconnect
        observability.bind_log_context(user_id=self.user.pk)
        self.auth_groups = socket_groups(self.scope)
        for group in self.auth_groups:
            await self.channel_layer.group_add(group, self.channel_name)
        if expires_at:
            self.expiry = asyncio.create_task(self._close_when_token_expires(expires_at))
        self.gap_watch = asyncio.create_task(self._watch_for_gaps())

    async def disconnect(self, code: int) -> None:
        if getattr(self, "counted", False):
            self.counted = False
            observability.websocket_closed()
        for task in (getattr(self, "expiry", None), getattr(self, "gap_watch", None)):
            if task:
                task.cancel()
        for session_id in list(getattr(self, "own_turns", ())):
            self._forget_own_turn(session_id)
        for group in getattr(self, "auth_groups", ()):
            await self.channel_layer.group_discard(group, self.channel_name)
        for session_id in list(self.subscriptions):
            await self.channel_layer.group_discard(runs.session_group(session_id), self.channel_name)
        self.subscriptions.clear()

    async def auth_revoked(self, message: dict[str, Any]) -> None:
        """The user's sessions (or this browser session) ended: say why, then close."""
        reason = message.get("reason") or "Session ended."
        await self.send_json(_error_frame("session_revoked", reason))
        await self.close(code=CLOSE_UNAUTHENTICATED, reason=reason[:120])

    async def _close_when_token_expires(self, expires_at: int) -> None:
        await asyncio.sleep(max(0, expires_at - time.time()))
        await self.send_json(_error_frame("token_expired", "The access token expired; reconnect with a new one."))
        await self.close(code=CLOSE_UNAUTHENTICATED)

    # -- client messages

    async def receive(self, text_data=None, bytes_data=None, **kwargs) -> None:
        frame = text_data if text_data is not None else bytes_data or b""
        limit = settings.ASSISTANT_MAX_FRAME_BYTES
        # daphne closes the socket before a frame this big gets here (`manage.py run` gives it the
        # same limit); this is for other servers.
        size = len(frame)
        if isinstance(frame, str) and size > limit // 4:  # else within the limit even at 4 bytes a character
            size = len(frame.encode("utf-8", "surrogatepass"))
        if size > limit:
            await self.close(code=CLOSE_MESSAGE_TOO_BIG, reason=f"Frames are limited to {limit} bytes.")
            return
        try:
            content = untrusted.parse_json(frame)
        except untrusted.UnsafeInput as unsafe:  # nested too deeply, NUL characters, lone surrogates…
            where = f"`{unsafe.where()}`: " if unsafe.path else ""
            await self.send_json(_error_frame("invalid", f"{where}{unsafe.message}"))
            return
        except ValueError:
            await self.send_json(_error_frame("invalid", "Frames must be JSON objects."))
            return
        await self.receive_json(content)

    async def receive_json(self, content: Any, **kwargs) -> None:
        if not isinstance(content, dict):
            await self.send_json(_error_frame("invalid", "Frames must be JSON objects."))
            return
        kind = content.get("type")
        handlers = {"start": self._start, "stop": self._stop, "resume": self._resume, "approve": self._approve,
                    "regenerate": self._regenerate, "edit": self._edit, "ping": self._ping}  # fmt: skip
        handler = handlers.get(kind) if isinstance(kind, str) else None
        if handler is None:
            await self.send_json(_error_frame(
                "invalid", "`type` must be one of: start, stop, resume, approve, regenerate, edit, ping."
            ))  # fmt: skip
            return
        try:
            await handler(content)
        except runs.TurnRefused as refused:
            session_id = content.get("session_id") if isinstance(content.get("session_id"), int) else None
            await self.send_json({**_error_frame(refused.code, refused.message, session_id), **(refused.details or {})})
            if refused.code == "account_inactive":  # deactivated where this socket's closing didn't reach
                await self.close(code=CLOSE_UNAUTHENTICATED, reason="Account deactivated.")

    async def _start(self, content: dict[str, Any]) -> None:
        session_id = _int_field(content, "session_id", required=False)
        agent = content.get("agent")
        message = content.get("message")
        custom_properties = content.get("custom_properties")
        if not isinstance(message, str):
            raise runs.TurnRefused("invalid", "`message` must be a string.")
        if session_id is None and not isinstance(agent, str):
            raise runs.TurnRefused("invalid", "Give `agent` (a slug) to start a new session, or `session_id`.")
        if custom_properties is not None and not isinstance(custom_properties, dict):
            raise runs.TurnRefused("invalid", "`custom_properties` must be an object.")
        await self._run(text=message, agent_slug=agent, session_id=session_id, custom_properties=custom_properties)

    async def _regenerate(self, content: dict[str, Any]) -> None:
        session_id = _int_field(content, "session_id", required=True)
        await self._run(text=None, session_id=session_id, replace_last=True)

    async def _edit(self, content: dict[str, Any]) -> None:
        session_id = _int_field(content, "session_id", required=True)
        message = content.get("message")
        if not isinstance(message, str):
            raise runs.TurnRefused("invalid", "`message` must be a string.")
        await self._run(text=message, session_id=session_id, replace_last=True)

    async def _run(self, **turn: Any) -> None:
        """Plan the turn, watch it from its first event, and start it."""
        with observability.span("websocket turn", {"network.protocol.name": "websocket"}):  # the turn's parent
            plan = await runs.turn_begin_async(user=self.user, **turn)
            plan.transport = "websocket"
            await self._subscribe(plan.session_id, last_seq=plan.first_event_seq - 1)
            self.open_turns[plan.session_id] = time.monotonic()
            # Besides the session's group, the socket that started the turn reads the runner's queue: it
            # gets the answer's deltas before they are written (its first token ~1 ms sooner), and the
            # seq filter of turn_event drops whichever copy of an event comes second.
            queue: asyncio.Queue = asyncio.Queue()
            runner = await runs.turn_start(plan, listeners=[queue])
        self._forget_own_turn(plan.session_id)
        self.own_turns[plan.session_id] = (runner, queue, asyncio.create_task(self._read_own_turn(queue)))

    async def _read_own_turn(self, queue: asyncio.Queue) -> None:
        while True:
            frame = await queue.get()
            await self.turn_event({"event": frame})
            if frame["type"] in TERMINAL_EVENTS:
                self._forget_own_turn(frame["session_id"], cancel=False)
                return

    def _forget_own_turn(self, session_id: int, *, cancel: bool = True) -> None:
        runner, queue, reader = self.own_turns.pop(session_id, (None, None, None))
        if runner is not None and queue in runner.listeners:
            runner.listeners.remove(queue)
        if reader is not None and cancel:
            reader.cancel()

    async def _stop(self, content: dict[str, Any]) -> None:
        await runs.turn_stop(user=self.user, session_id=_int_field(content, "session_id", required=True))

    async def _approve(self, content: dict[str, Any]) -> None:
        session_id = _int_field(content, "session_id", required=True)
        approval_id = content.get("approval_id")
        if not isinstance(approval_id, str):
            raise runs.TurnRefused("invalid", "`approval_id` must be a string.")
        if session_id not in self.subscriptions:
            # Watch the session from where it is now: the decision's events and the resumed turn's follow.
            last = await run_sync(runs.session_last_seq, user=self.user, session_id=session_id)
            await self._subscribe(session_id, last_seq=last)
        await runs.approval_decide_async(
            user=self.user, session_id=session_id, approval_id=approval_id,
            decision=content.get("decision"), reason=content.get("reason") or "",
        )  # fmt: skip
        self.open_turns[session_id] = time.monotonic()

    async def _resume(self, content: dict[str, Any]) -> None:
        session_id = _int_field(content, "session_id", required=True)
        after_seq = _int_field(content, "after_seq", required=False)
        # Subscribe first, then read: whatever is published meanwhile is either already stored
        # (persist-then-publish) or arrives live; the seq filter drops what was read twice.
        await self._subscribe(session_id, last_seq=None)
        async with self.send_lock:
            try:
                events = await run_sync(
                    runs.turn_events_after,
                    user=self.user, session_id=session_id, after_seq=after_seq
                )
                running = await run_sync(runs.turn_is_running, user=self.user, session_id=session_id)
                pending = await run_sync(runs.approvals_pending, user=self.user, session_id=session_id)
            except runs.TurnRefused:
                await self._unsubscribe(session_id)
                raise
            for event in events:
                await self.send_json(event)
            last = events[-1]["seq"] if events else (after_seq or 0)
            self.subscriptions[session_id] = max(last, self.subscriptions.get(session_id) or 0)
            if running:
                self.open_turns[session_id] = time.monotonic()
            await self.send_json({"type": "resumed", "session_id": session_id, "seq": last, "running": running,
                                  "pending_approvals": [runs.approval_request_data(a) for a in pending]})  # fmt: skip

    async def _ping(self, content: dict[str, Any]) -> None:
        await self.send_json({"type": "pong"})

    async def _subscribe(self, session_id: int, *, last_seq: int | None) -> None:
        if session_id not in self.subscriptions:
            await self.channel_layer.group_add(runs.session_group(session_id), self.channel_name)
        self.subscriptions[session_id] = last_seq if last_seq is not None else self.subscriptions.get(session_id, 0)

    async def _unsubscribe(self, session_id: int) -> None:
        self.subscriptions.pop(session_id, None)
        self.open_turns.pop(session_id, None)
        await self.channel_layer.group_discard(runs.session_group(session_id), self.channel_name)

    # -- group messages

    async def dispatch(self, message: dict[str, Any]) -> None:
        # Channels hops to the process's one database thread before every handler, to close stale
        # connections: for turn events, thousands of hops a second with many sockets open, queued with
        # the turns' writes (bench/RESULTS.md). `turn_event` reaches the database only through
        # run_sync, which checks the lane's connection itself.
        if message["type"] == "turn.event":
            await self.turn_event(message)
        else:
            await super().dispatch(message)

    async def turn_event(self, message: dict[str, Any]) -> None:
        event = message["event"]
        session_id = event["session_id"]
        async with self.send_lock:
            last = self.subscriptions.get(session_id)
            if last is None or event["seq"] <= last:
                return  # not watching, or already sent from the database
            if event["seq"] > last + 1:
                # The channel layer dropped something (a full channel drops silently): fill the gap
                # from the database, where every published event already is.
                missed = await run_sync(
                    runs.turn_events_after,
                    user=self.user, session_id=session_id, after_seq=last
                )
                for frame in missed:
                    if frame["seq"] < event["seq"]:
                        await self._send_turn_frame(frame)
            await self._send_turn_frame(event)

    async def _send_turn_frame(self, frame: dict[str, Any]) -> None:
        session_id = frame["session_id"]
        await self.send_json(frame)
        self.subscriptions[session_id] = frame["seq"]
        if frame["type"] in TERMINAL_EVENTS:
            self.open_turns.pop(session_id, None)
        elif session_id in self.open_turns:
            self.open_turns[session_id] = time.monotonic()

    async def _watch_for_gaps(self) -> None:
        """A turn of which nothing arrived for ASSISTANT_GAP_CHECK_INTERVAL seconds: send what the
        database has after the last frame sent. The channel layer can lose messages (a full channel,
        an expired message, a Redis hiccup) and a lost last frame is followed by nothing that would
        reveal the gap; events are stored before they are published, so the database has them."""
        interval = settings.ASSISTANT_GAP_CHECK_INTERVAL
        while True:
            await asyncio.sleep(interval / 2)
            for session_id, last_sent_at in list(self.open_turns.items()):
                if time.monotonic() - last_sent_at < interval:
                    continue
                async with self.send_lock:
                    last = self.subscriptions.get(session_id)
                    if last is None or session_id not in self.open_turns:
                        continue
                    self.open_turns[session_id] = time.monotonic()  # checked now
                    try:
                        missed = await run_sync(
                            runs.turn_events_after,
                            user=self.user, session_id=session_id, after_seq=last
                        )
                    except runs.TurnRefused:  # the session is gone
                        self.open_turns.pop(session_id, None)
                        continue
                    for frame in missed:
                        if frame["seq"] > self.subscriptions.get(session_id, 0):
                            await self._send_turn_frame(frame)
