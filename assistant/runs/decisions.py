"""Approvals, asynchronously: decisions and expiries carried on, from any process (runs/approvals.py).

A decision that completes its message's decisions starts the resumed turn here, in the process that
received it (its runner publishes the stored decisions first); one that doesn't is published to the
session's watchers as it is. Every serving process sweeps for expired approvals at the stale-turn
sweep's interval (assistant/apps.py starts `approval_expiry_sweeper`).
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from channels.layers import get_channel_layer
from django.conf import settings

from assistant.runs.approvals import Decided, LateDecision, approval_decide, approvals_expire
from assistant.runs.groups import session_group
from assistant.runs.plan import TurnRefused
from assistant.runs.runner import turn_start
from config.threads import run_sync

logger = logging.getLogger(__name__)


async def approvals_expire_sweep() -> int:
    settled = await run_sync(approvals_expire)
    for frames, plan in settled:
        if plan is not None:
            await turn_start(plan)
        else:
            await publish_frames(frames)
    return len(settled)


async def approval_expiry_sweeper() -> None:
    """Sweep at the stale-turn sweep's interval for as long as the process serves."""
    while True:
        await asyncio.sleep(settings.ASSISTANT_STALE_SWEEP_INTERVAL)
        try:
            await approvals_expire_sweep()
        except asyncio.CancelledError:
            raise
        except Exception:  # noqa: BLE001 - a database hiccup must not end the sweeps for good
            logger.exception("Approval expiry sweep failed; trying again at the next one")


async def publish_frames(frames: list[dict[str, Any]]) -> None:
    layer = get_channel_layer()
    if layer is None:
        return
    for frame in frames:
        await layer.group_send(session_group(frame["session_id"]), {"type": "turn.event", "event": frame})


async def approval_decide_async(**kwargs: Any) -> Decided:
    """`approval_decide`, then the resumed turn started here (its runner publishes the decisions
    first) or the decision published to the session's watchers."""
    try:
        decided = await run_sync(approval_decide, **kwargs)
    except LateDecision as late:
        decided = late.decided
        await _carry_on(decided)
        raise TurnRefused(late.code, late.message) from None
    await _carry_on(decided)
    return decided


async def _carry_on(decided: Decided) -> None:
    if decided.plan is not None:
        await turn_start(decided.plan)
    else:
        await publish_frames(decided.frames)
