"""Retention: sessions past RETENTION_DAYS or their agent's retention_days go with everything they hold;
replay events and audit rows by their own settings; expired exports; never a user on legal hold; usage
counters always stay. Bounded: rows are read and deleted a chunk at a time."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from auditlog.models import LogEntry
from django.core.management import call_command
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from agents.models import Message, UserAgentSession
from agents.services import message_append, session_create
from agents.workspaces import workspace_ensure
from assistant.models import TurnEvent
from audit.models import AuditEvent
from lifecycle import stores
from lifecycle.models import Export, PurgeClock
from lifecycle.purge import purge_claim, purge_expired, purge_if_due
from usage.models import UsageCounter
from usage.services import usage_add

pytestmark = pytest.mark.django_db


def aged(session: UserAgentSession, days: int) -> UserAgentSession:
    UserAgentSession.objects.filter(pk=session.pk).update(updated_at=timezone.now() - timedelta(days=days))
    return session


@pytest.fixture
def conversation(org_agent):
    def make(owner, *, days: int, messages: int = 2) -> UserAgentSession:
        session = session_create(owner=owner, agent=org_agent, title="t")
        for n in range(messages):
            message_append(session=session, role="user", content=f"m{n}")
        (workspace_ensure(session.pk) / "f.txt").write_text("x")
        return aged(session, days)

    return make


def test_sessions_past_retention_days_go_with_messages_events_and_files(settings, user, conversation):
    settings.RETENTION_DAYS = 30
    expired, kept = conversation(user, days=31), conversation(user, days=29)
    TurnEvent.objects.create(session=expired, seq=1, type="text_delta", data={})
    usage_add(user_id=user.pk, usage={"input_tokens": 7}, cost=None)
    counts = purge_expired()
    assert counts["sessions"] == 1
    assert list(UserAgentSession.objects.values_list("pk", flat=True)) == [kept.pk]
    assert not Message.objects.filter(session_id=expired.pk).exists()
    assert not TurnEvent.objects.filter(session_id=expired.pk).exists()
    assert not workspace_ensure(kept.pk).joinpath("missing").exists() and (workspace_ensure(kept.pk) / "f.txt").exists()
    assert not (settings.WORKSPACES_DIR / str(expired.pk)).exists()
    assert UsageCounter.objects.get(user=user).input_tokens == 7  # aggregates survive


def test_zero_retention_keeps_everything(settings, user, conversation):
    settings.RETENTION_DAYS = 0
    conversation(user, days=5000)
    assert purge_expired()["sessions"] == 0
    assert UserAgentSession.objects.count() == 1


def test_an_agent_may_keep_its_sessions_less(settings, user, conversation, org_agent):
    settings.RETENTION_DAYS = 90
    org_agent.retention_days = 7
    org_agent.save()
    expired, kept = conversation(user, days=8), conversation(user, days=6)
    assert purge_expired()["sessions"] == 1
    assert list(UserAgentSession.objects.values_list("pk", flat=True)) == [kept.pk]
    assert expired.pk not in UserAgentSession.objects.values_list("pk", flat=True)


def test_an_agents_retention_applies_when_the_global_one_is_off(settings, user, conversation, org_agent):
    settings.RETENTION_DAYS = 0
    org_agent.retention_days = 7
    org_agent.save()
    conversation(user, days=8)
    assert purge_expired()["sessions"] == 1


def test_a_user_on_legal_hold_is_never_purged(settings, make_user, conversation):
    settings.RETENTION_DAYS = 1
    settings.TURN_EVENTS_RETENTION_DAYS = 1
    settings.AUDIT_RETENTION_DAYS = 1
    held = make_user(legal_hold=True)
    session = conversation(held, days=400)
    for seq in (1, 2):
        TurnEvent.objects.create(session=session, seq=seq, type="text_delta", data={})
    TurnEvent.objects.filter(session=session).update(created_at=timezone.now() - timedelta(days=400))
    AuditEvent.objects.create(kind=AuditEvent.Kind.TOOL_CALL, actor=held, actor_email=held.email)
    AuditEvent.objects.create(kind=AuditEvent.Kind.LOGIN_FAILED, actor_email=held.email)
    _age_audit(days=400)
    counts = purge_expired()
    assert counts["sessions"] == 0 and counts["turn_events"] == 0 and counts["audit_events"] == 0
    assert UserAgentSession.objects.filter(pk=session.pk).exists() and TurnEvent.objects.count() == 2


def _age_audit(*, days: int) -> None:
    from django.db.models import QuerySet

    QuerySet(model=AuditEvent).update(created_at=timezone.now() - timedelta(days=days))
    LogEntry.objects.update(timestamp=timezone.now() - timedelta(days=days))


def test_replay_events_past_their_retention_go_but_each_sessions_last_stays(settings, user, conversation):
    settings.TURN_EVENTS_RETENTION_DAYS = 10
    session = conversation(user, days=0)
    for seq in (1, 2, 3):
        TurnEvent.objects.create(session=session, seq=seq, type="text_delta", data={})
    TurnEvent.objects.filter(seq__lte=3).update(created_at=timezone.now() - timedelta(days=11))
    TurnEvent.objects.create(session=session, seq=4, type="text_delta", data={})
    other = conversation(user, days=0)
    TurnEvent.objects.create(session=other, seq=1, type="result", data={})
    TurnEvent.objects.filter(session=other).update(created_at=timezone.now() - timedelta(days=11))
    assert purge_expired()["turn_events"] == 3
    assert sorted(TurnEvent.objects.values_list("session_id", "seq")) == [(session.pk, 4), (other.pk, 1)]


def test_audit_rows_past_their_retention_go_from_both_logs(settings, user):
    settings.AUDIT_RETENTION_DAYS = 30
    AuditEvent.objects.create(kind=AuditEvent.Kind.LOGIN_FAILED, actor_email="x@example.com")
    user.name = "Renamed"
    user.save()  # a django-auditlog row
    assert LogEntry.objects.exists()
    _age_audit(days=31)
    AuditEvent.objects.create(kind=AuditEvent.Kind.LOGIN_FAILED, actor_email="y@example.com")
    counts = purge_expired()
    assert counts["audit_events"] == 1 and counts["audit_log_entries"] >= 1
    assert list(AuditEvent.objects.values_list("actor_email", flat=True)) == ["y@example.com"]
    assert not LogEntry.objects.exists()


def test_expired_exports_go_with_their_files(user, exports_dir):
    gone = Export.objects.create(user=user, state="ready", file_name="a.zip", expires_at=timezone.now() - timedelta(seconds=1))
    kept = Export.objects.create(user=user, state="ready", file_name="b.zip", expires_at=timezone.now() + timedelta(hours=1))
    (exports_dir / "a.zip").write_bytes(b"PK")
    (exports_dir / "b.zip").write_bytes(b"PK")
    assert purge_expired()["exports"] == 1
    assert list(Export.objects.values_list("pk", flat=True)) == [kept.pk]
    assert [p.name for p in exports_dir.iterdir()] == ["b.zip"]
    assert gone.pk not in Export.objects.values_list("pk", flat=True)


def test_a_long_session_is_deleted_a_chunk_at_a_time(settings, user, conversation, monkeypatch):
    # 100,000 messages must not be loaded at once: every read of messages is limited to a chunk.
    monkeypatch.setattr(stores.delete_in_chunks, "__kwdefaults__", {"size": 10})
    settings.RETENTION_DAYS = 1
    session = conversation(user, days=2, messages=35)
    with CaptureQueriesContext(connection) as queries:
        assert purge_expired()["sessions"] == 1
    assert not Message.objects.filter(session_id=session.pk).exists()
    sqls = [q["sql"] for q in queries]
    reads = [(i, sql) for i, sql in enumerate(sqls) if sql.startswith("SELECT") and '"agents_message"' in sql.split("WHERE")[0]]
    last_delete = max(i for i, sql in enumerate(sqls) if sql.startswith('DELETE FROM "agents_message"'))
    # Every read of messages while some remain takes a chunk; the sessions' own cascade looks once more,
    # after the last of them is gone.
    unbounded = [sql for i, sql in reads if i < last_delete and not _bounded(sql, 10)]
    assert reads and unbounded == []
    assert all(_bounded(sql, 10) or i > last_delete for i, sql in reads)


def _bounded(sql: str, size: int) -> bool:
    """A read of at most `size` rows: a LIMIT, or a list of at most that many ids."""
    match = re.search(r'"id" IN \(([^)]*)\)', sql)
    return f"LIMIT {size}" in sql or (match is not None and len(match.group(1).split(",")) <= size)


def test_the_command_purges_and_says_what(settings, user, conversation, capsys):
    settings.RETENTION_DAYS = 1
    conversation(user, days=3)
    call_command("purge_expired")
    assert "sessions: 1" in capsys.readouterr().out


def test_one_replica_of_many_takes_the_days_purge(settings):
    now = timezone.now()
    assert purge_claim(now=now) is True
    assert purge_claim(now=now + timedelta(hours=1)) is False  # another replica, the same day
    assert purge_claim(now=now + timedelta(days=1, seconds=1)) is True
    assert PurgeClock.objects.count() == 1


def test_the_serving_processes_purge_runs_when_due_only(settings, user, conversation):
    settings.RETENTION_DAYS = 1
    conversation(user, days=3)
    assert purge_if_due() == {"sessions": 1, "turn_events": 0, "audit_events": 0, "audit_log_entries": 0, "exports": 0}
    conversation(user, days=3)
    assert purge_if_due() is None
    assert UserAgentSession.objects.count() == 1
