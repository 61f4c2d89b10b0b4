"""Stopping a session's turn from any process, and reading a session's stored events."""

from __future__ import annotations

from typing import Any

from channels.layers import get_channel_layer
from django.db.models import Max

from agents.models import Message, UserAgentSession
from assistant.models import TurnEvent
from assistant.runs.groups import control_group
from assistant.runs.plan import TurnRefused
from assistant.runs.runner import running_turn
from config.threads import run_sync


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
    if not await run_sync(turn_is_running, user=user, session_id=session_id):
        raise TurnRefused("no_turn", "No turn is running in this session.")
    runner = running_turn(session_id)
    if runner is not None:
        runner.request_stop()
    else:
        await get_channel_layer().group_send(control_group(session_id), {"type": "turn.stop", "session_id": session_id})


def session_last_seq(*, user, session_id: int) -> int:
    """The seq of the session's last stored event (0: none)."""
    session = _owned_session(user, session_id)
    return TurnEvent.objects.filter(session=session).aggregate(last=Max("seq"))["last"] or 0


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
