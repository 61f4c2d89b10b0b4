from __future__ import annotations

from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.utils import timezone

from agents.models import Message, UserAgentSession
from assistant.models import TurnEvent

pytestmark = pytest.mark.django_db


def session_with_events(user, agent, *, age_days: float, streaming: bool = False) -> UserAgentSession:
    session = UserAgentSession.objects.create(owner=user, agent=agent)
    Message.objects.create(session=session, seq=1, role="user", content=[{"type": "text", "text": "hi"}])
    Message.objects.create(session=session, seq=2, role="assistant", content=[], status="streaming" if streaming else "complete")
    for seq in (1, 2):
        TurnEvent.objects.create(session=session, seq=seq, type="text_delta", data={"text": "x"})
    TurnEvent.objects.filter(session=session).update(created_at=timezone.now() - timezone.timedelta(days=age_days))
    return session


def test_it_deletes_old_events_and_keeps_recent_ones_running_turns_and_messages(user, agent):
    old = session_with_events(user, agent, age_days=10)
    recent = session_with_events(user, agent, age_days=1)
    running = session_with_events(user, agent, age_days=10, streaming=True)
    out = StringIO()
    call_command("prune_turn_events", "--days", "7", stdout=out)
    assert "Deleted 2 turn events" in out.getvalue()
    assert not TurnEvent.objects.filter(session=old).exists()
    assert TurnEvent.objects.filter(session=recent).count() == 2
    assert TurnEvent.objects.filter(session=running).count() == 2
    assert Message.objects.filter(session=old).count() == 2


def test_it_refuses_a_negative_age():
    with pytest.raises(CommandError):
        call_command("prune_turn_events", "--days", "-1")
