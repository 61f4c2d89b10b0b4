"""Storing what turns say: every turn's flushes of a process, many to a transaction (`TurnWriter`)."""

from __future__ import annotations

import asyncio
import logging
import weakref
from dataclasses import dataclass
from typing import Any

from django.db import transaction
from django.utils import timezone

from agents import services as agent_services
from agents.models import Message, UserAgentSession
from assistant.runs.statements import events_insert, message_update
from usage.services import message_usage_stored, usage_changed
from config.threads import run_sync

logger = logging.getLogger(__name__)


@dataclass
class TurnWrite:
    """One runner's flush: its new events and its message's changed fields."""

    session_id: int
    events: list[tuple[int, str, dict[str, Any]]]  # (seq, type, data)
    message_id: int | None
    message_fields: dict[str, Any]
    # The message's usage as stored before this write, and its owner: the usage counters get the
    # difference without reading the message first (None: read it).
    usage_before: dict[str, Any] | None = None
    owner_id: int | None = None


def _persist(writes: list[TurnWrite]) -> None:
    """Store `writes` in one transaction: one insert of all their events, one update per message
    (a message's queued updates merged in order, the last value of a field winning)."""
    now = timezone.now()
    with transaction.atomic():
        events_insert(
            ((write.session_id, seq, kind, data) for write in writes for seq, kind, data in write.events), now
        )
        fields_by_message: dict[int, dict[str, Any]] = {}
        usage_before: dict[int, tuple[dict[str, Any], int]] = {}  # before the first of its writes
        for write in writes:
            if write.message_id is not None and write.message_fields:
                fields_by_message.setdefault(write.message_id, {}).update(write.message_fields)
                if write.usage_before is not None and write.owner_id is not None:
                    usage_before.setdefault(write.message_id, (write.usage_before, write.owner_id))
        for message_id, fields in fields_by_message.items():
            # The usage counters, in this transaction.
            if message_id in usage_before:
                before, owner_id = usage_before[message_id]
                usage_changed(user_id=owner_id, before=before, fields=fields)
            else:
                message_usage_stored(message_id, fields)
            message_update(message_id, fields, now)


def _persist_batch(writes: list[TurnWrite]) -> list[Exception | None]:
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


def streaming_message_touch(message_id: int) -> None:
    Message.objects.filter(pk=message_id, status=Message.Status.STREAMING).update(updated_at=timezone.now())


def message_append(session_id: int, **fields) -> int:
    session = UserAgentSession.objects.get(pk=session_id)
    return agent_services.message_append(session=session, **fields).pk


# --- the writer: every turn's flushes, one transaction at a time -------------------------------


class TurnWriter:
    """Stores the flushes of all the turns a process runs, many per transaction ("group commit").

    Database calls of async code run on a few threads (config/threads.py), one after another on each: with
    each of a thousand streams writing its own flush in its own transaction, the flushes queued up
    behind each other and deltas arrived seconds late (bench/RESULTS.md). A runner hands its flush
    to the writer of its event loop and waits; the writer takes everything queued and stores it in
    one call, one transaction. No timer: a lone flush is written at once, and while one batch is
    being written the next one gathers.

    A flush that was handed over is stored even if its runner is cancelled while waiting (a stop
    mid-write leaves nothing half done), and before any flush of the same turn queued after it.
    """

    def __init__(self) -> None:
        self.queue: list[tuple[TurnWrite, asyncio.Future]] = []
        self.task: asyncio.Task | None = None

    async def write(self, write: TurnWrite) -> None:
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
                errors = await run_sync(_persist_batch, [write for write, _ in batch])
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


def turn_writer() -> TurnWriter:
    loop = asyncio.get_running_loop()
    writer = _writers.get(loop)
    if writer is None:
        writer = _writers[loop] = TurnWriter()
    return writer
