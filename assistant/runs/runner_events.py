"""The runner's events (a mixin of TurnRunner, whose state it uses): deltas coalesced, each event
stored before it is published to the session's group, and delivered to the runner's own listeners."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from typing import Any

from django.conf import settings

from assistant.runs.groups import session_group
from assistant.runs.writer import TurnWrite, turn_writer
from usage.services import USAGE_FIELDS

USAGE_AND_COST = (*USAGE_FIELDS, "cost")
TERMINAL_EVENTS = frozenset({"result", "error"})


def _carries_usage(fields: dict[str, Any]) -> bool:
    return any(name in fields for name in USAGE_AND_COST)


@dataclass
class Pending:
    """Deltas not yet flushed."""

    text: str = ""
    thinking: str = ""


class EventSteps:
    def _partial_content(self) -> list[dict[str, Any]]:
        blocks: list[dict[str, Any]] = []
        if self.text:
            blocks.append({"type": "text", "text": self.text})
        return blocks

    async def _emit(self, kind: str, data: dict[str, Any], *, message_fields: dict[str, Any] | None = None) -> None:
        """Flush pending deltas, then persist and publish one event, in order; with `message_fields`,
        the message's (else its text so far, when deltas were pending)."""
        async with self.lock:
            frames = self._take_pending()
            frames.append(self._frame(kind, data))
            if message_fields is None:
                message_fields = self._streaming_fields() if len(frames) > 1 else {}
            await self._persist_and_publish(frames, message_fields)

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
        self.pending = Pending()
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
        write = TurnWrite(self.session_id, events, self.message_id, message_fields)
        stored_usage = None
        if self.message_id is not None and self.plan.budget is not None and _carries_usage(message_fields):
            write.usage_before, write.owner_id = self.stored_usage, self.plan.budget.user_id
            stored_usage = {name: message_fields.get(name, self.stored_usage.get(name)) for name in USAGE_AND_COST}
        # The request that started the turn reads its events from its queue, never the database: the
        # answer's text reaches it without waiting for the write (its first token ~1 ms sooner). Not
        # the last event: an answer whose end a client has is stored.
        early = not any(frame["type"] in TERMINAL_EVENTS for frame in frames)
        if early:
            self._deliver(frames)
        # Stored before published to the session's group, whose subscribers fill gaps from the
        # database; stored even if a stop cancels us meanwhile (see TurnWriter).
        await turn_writer().write(write)
        if stored_usage is not None:
            self.stored_usage = stored_usage
        self.last_flush = time.monotonic()
        await self._publish(frames, listeners=not early)
        stopping = self.stop_requested or (self.task is not None and self.task.cancelling())
        if stopping and not self.finished and asyncio.current_task() is self.loop_task:
            # A stop, or the process's shutdown cancelling the turn (which cancels the model loop it
            # awaits), that lands while channels-redis publishes can be swallowed by the Redis client
            # (the model loop then ran on, deaf to it): honour it here.
            raise asyncio.CancelledError()

    async def _publish_session_event(self) -> None:
        """The turn's first events, stored with the plan (`session`, or a resumed turn's decisions):
        sent before anything of the answer."""
        await self._publish(self.plan.opening())

    def _deliver(self, frames: list[dict[str, Any]]) -> None:
        for frame in frames:
            for queue in self.listeners:
                queue.put_nowait(frame)

    async def _publish(self, frames: list[dict[str, Any]], *, listeners: bool = True) -> None:
        if listeners:
            self._deliver(frames)
        for frame in frames:
            await self.layer.group_send(session_group(self.session_id), {"type": "turn.event", "event": frame})
