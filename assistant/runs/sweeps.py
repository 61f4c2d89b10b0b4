"""Closing turns whose process died, from every serving process.

A turn's runner keeps its `streaming` answer fresh (a write at least every
ASSISTANT_STALE_TURN_AFTER / 4 seconds: deltas, or the heartbeat). A process that is killed
(SIGKILL, OOM, a lost machine) leaves its answers `streaming` for good; every serving process
sweeps for those (assistant/apps.py starts `stale_turn_sweeper`) and closes them as `error` /
`interrupted`, with an `error` event stored and published like a runner's own, so a watching
client gets a final frame, `resume` replays it and says `running: false`, and `stop` answers
`no_turn` at once.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from channels.layers import get_channel_layer
from django.conf import settings
from django.db import transaction
from django.db.models import Max
from django.utils import timezone

from agents.models import Message, UserAgentSession
from assistant.models import TurnEvent
from assistant.runs.groups import session_group
from config.threads import run_sync

logger = logging.getLogger(__name__)

INTERRUPTED_CODE = "interrupted"
INTERRUPTED_MESSAGE = "The server handling this answer stopped before it finished."


def stale_turns_settle(*, session_id: int | None = None, limit: int = 100) -> list[dict[str, Any]]:
    """Close the `streaming` answers not written for ASSISTANT_STALE_TURN_AFTER seconds (of one
    session, or all); returns the `error` frames stored, for publishing.

    Each is settled under its session's row lock (the lock turn_begin takes), and only if it is
    still streaming and still stale then: two processes sweeping together settle it once."""
    stale_before = timezone.now() - timezone.timedelta(seconds=settings.ASSISTANT_STALE_TURN_AFTER)
    stale = Message.objects.filter(status=Message.Status.STREAMING, updated_at__lt=stale_before)
    if session_id is not None:
        stale = stale.filter(session_id=session_id)
    frames = []
    for message_id, owner_session_id in stale.values_list("pk", "session_id")[:limit]:
        with transaction.atomic():
            UserAgentSession.objects.select_for_update().filter(pk=owner_session_id).first()
            settled = Message.objects.filter(
                pk=message_id, status=Message.Status.STREAMING, updated_at__lt=stale_before
            ).update(
                status=Message.Status.ERROR,
                error_code=INTERRUPTED_CODE,
                error_message=INTERRUPTED_MESSAGE,
                updated_at=timezone.now(),
            )
            if not settled:
                continue
            last_seq = TurnEvent.objects.filter(session_id=owner_session_id).aggregate(last=Max("seq"))["last"] or 0
            event = TurnEvent.objects.create(
                session_id=owner_session_id,
                seq=last_seq + 1,
                type="error",
                data={"code": INTERRUPTED_CODE, "message": INTERRUPTED_MESSAGE},
            )
            frames.append(event.as_frame())
    return frames


async def stale_turns_sweep() -> int:
    """One sweep: settle stale turns, then publish their final frames to the sessions' watchers."""
    frames = await run_sync(stale_turns_settle)
    layer = get_channel_layer()
    for frame in frames:
        logger.warning("Turn of session %s was left streaming by a dead process: closed as interrupted", frame["session_id"])
        if layer is not None:
            await layer.group_send(session_group(frame["session_id"]), {"type": "turn.event", "event": frame})
    return len(frames)


async def stale_turn_sweeper() -> None:
    """Sweep every ASSISTANT_STALE_SWEEP_INTERVAL seconds for as long as the process serves."""
    while True:
        await asyncio.sleep(settings.ASSISTANT_STALE_SWEEP_INTERVAL)
        try:
            await stale_turns_sweep()
        except asyncio.CancelledError:
            raise
        except Exception:  # noqa: BLE001 - a database hiccup must not end the sweeps for good
            logger.exception("Stale-turn sweep failed; trying again at the next one")
