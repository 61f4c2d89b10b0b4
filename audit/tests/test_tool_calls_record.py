"""tool_calls_record: one row per call with its masked input, outcome, duration, the result's digest
and preview and the approval; what a real turn and the CLI record; append-only."""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import io
from datetime import datetime, timezone

import pytest
from asgiref.sync import sync_to_async
from django.core.management import call_command

from agents.models import UserAgentSession
from assistant import runs
from assistant.engine import ToolCall, ToolOutcome
from audit.models import AuditEvent
from audit.services import RESULT_PREVIEW_CHARS, ToolApproval, ToolCallRecord, tool_calls_record
from config.testing.fake_anthropic import Reply, ToolUse, fake_anthropic_server

DECIDED_AT = datetime(2026, 12, 1, 9, 30, tzinfo=timezone.utc)


@pytest.fixture
def session(user, agent):
    return UserAgentSession.objects.create(owner=user, agent=agent)


def sha256(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


@pytest.mark.django_db
def test_it_records_input_outcome_duration_digest_and_preview(session, user, django_assert_num_queries):
    result = "é" * 300 + "x" * 700  # longer than the preview
    with django_assert_num_queries(2):  # the session, then one insert for every call
        tool_calls_record(session_id=session.pk, source="turn", calls=[
            ToolCallRecord("write_file", {"path": "a.txt", "api_key": "k-123"}, False, duration_ms=42, result=result),
            ToolCallRecord("run_shell", {"command": "false"}, True, result="exit 1"),
        ])  # fmt: skip

    first, second = AuditEvent.objects.filter(kind="tool_call").order_by("id")
    assert (first.tool, first.outcome, first.agent, first.session_id, first.actor_id, first.actor_email,
            first.source) == ("write_file", "ok", "helper", session.pk, user.pk, user.email, "turn")  # fmt: skip
    assert first.input == {"path": "a.txt", "api_key": "***"}
    assert first.duration_ms == 42
    assert first.result_digest == sha256(result)
    assert first.result_preview == result[:RESULT_PREVIEW_CHARS] and len(first.result_preview) == 500
    assert (second.outcome, second.input, second.duration_ms) == ("error", {"command": "false"}, None)
    assert second.result_preview == "exit 1"
    assert second.result_digest == sha256("exit 1")


@pytest.mark.django_db
def test_a_call_without_approval_is_recorded_as_not_required(session):
    tool_calls_record(session_id=session.pk, source="cli", calls=[ToolCallRecord("read_file", {"path": "a"}, False)])
    event = AuditEvent.objects.get()
    assert (event.approval, event.approved_by_id, event.approved_by_email, event.approved_at,
            event.approval_reason) == ("not_required", None, "", None, "")  # fmt: skip
    assert event.result_digest == sha256("") and event.result_preview == ""


@pytest.mark.django_db
def test_it_records_who_allowed_denied_or_let_a_call_expire(session, user):
    allowed = ToolApproval("allow", user.pk, user.email, DECIDED_AT)
    denied = ToolApproval("deny", user.pk, user.email, DECIDED_AT, reason="not that file")
    expired = ToolApproval("expired", None, "", DECIDED_AT)
    tool_calls_record(session_id=session.pk, source="turn", calls=[
        ToolCallRecord("write_file", {"path": "a"}, False, result="written", approval=allowed),
        ToolCallRecord("write_file", {"path": "b"}, True, result="The user denied this call.", approval=denied),
        ToolCallRecord("run_shell", {"command": "ls"}, True, result="expired", approval=expired),
    ])  # fmt: skip

    rows = AuditEvent.objects.order_by("id").values_list(
        "tool", "outcome", "approval", "approved_by_id", "approved_by_email", "approved_at", "approval_reason"
    )
    assert list(rows) == [
        ("write_file", "ok", "allow", user.pk, user.email, DECIDED_AT, ""),
        ("write_file", "error", "deny", user.pk, user.email, DECIDED_AT, "not that file"),
        ("run_shell", "error", "expired", None, "", DECIDED_AT, ""),
    ]


@pytest.mark.django_db
def test_a_decider_who_no_longer_exists_keeps_their_email_only(session, make_user):
    gone = make_user(email="gone@example.com")
    gone_id = gone.pk
    gone.delete()
    approval = ToolApproval("allow", gone_id, "gone@example.com", DECIDED_AT)
    tool_calls_record(session_id=session.pk, source="turn", calls=[ToolCallRecord("t", {}, False, approval=approval)])
    event = AuditEvent.objects.get()
    assert (event.approved_by_id, event.approved_by_email) == (None, "gone@example.com")


@pytest.mark.django_db
def test_an_unknown_decision_is_refused(session):
    with pytest.raises(ValueError, match="maybe"):
        tool_calls_record(session_id=session.pk, source="turn", calls=[
            ToolCallRecord("t", {}, False, approval=ToolApproval("maybe", None, "", None))
        ])  # fmt: skip
    assert not AuditEvent.objects.exists()


@pytest.mark.django_db
def test_text_postgresql_refuses_is_stored_replaced(session):
    # NUL and lone surrogates from a tool must not make the row (and the turn) fail on PostgreSQL.
    result = "bin\x00ary \ud800 out"
    tool_calls_record(session_id=session.pk, source="turn", calls=[
        ToolCallRecord("read_file", {"path": "x\x00y"}, False, result=result, approval=ToolApproval(
            "deny", None, "", DECIDED_AT, reason="no\x00pe"))
    ])  # fmt: skip
    event = AuditEvent.objects.get()
    assert event.input == {"path": "x\ufffdy"}
    assert event.result_preview == "bin\ufffdary ? out" and event.approval_reason == "no\ufffdpe"
    assert event.result_digest == hashlib.sha256(result.encode("utf-8", "surrogatepass")).hexdigest()


@pytest.mark.django_db
def test_a_preview_masks_credentials_in_the_result(session):
    result = "token: Bearer abcdefghijklmnop0123 ok"
    tool_calls_record(session_id=session.pk, source="turn", calls=[ToolCallRecord("get", {}, False, result=result)])
    event = AuditEvent.objects.get()
    assert event.result_preview == "token: Bearer *** ok" and event.result_digest == sha256(result)


@pytest.mark.django_db
def test_nothing_is_recorded_for_a_missing_session_or_no_calls(session, django_assert_num_queries):
    with django_assert_num_queries(0):
        tool_calls_record(session_id=session.pk, source="turn", calls=[])
    tool_calls_record(session_id=session.pk + 1000, source="turn", calls=[ToolCallRecord("t", {}, False)])
    assert not AuditEvent.objects.exists()


@pytest.mark.django_db
def test_events_are_append_only_by_every_orm_path(session, user):
    tool_calls_record(session_id=session.pk, source="turn", calls=[
        ToolCallRecord("t", {"a": 1}, False, approval=ToolApproval("allow", user.pk, user.email, DECIDED_AT))
    ])  # fmt: skip
    event = AuditEvent.objects.get()
    event.outcome = "error"
    with pytest.raises(ValueError, match="append-only"):
        event.save()
    with pytest.raises(ValueError, match="append-only"):
        event.delete()
    with pytest.raises(ValueError, match="append-only"):
        AuditEvent.objects.filter(pk=event.pk).update(outcome="error")
    with pytest.raises(ValueError, match="append-only"):
        AuditEvent.objects.all().delete()
    assert AuditEvent.objects.get().outcome == "ok"
    # A deleted user's events stay, unlinked, with the email.
    session.delete()
    user.delete()
    kept = AuditEvent.objects.get()
    assert (kept.actor_id, kept.actor_email) == (None, user.email)
    assert (kept.approved_by_id, kept.approved_by_email) == (None, user.email)


class VaultTools:
    def definitions(self):
        return [{"name": "fetch_secret", "description": "x", "input_schema": {"type": "object"}}]

    async def run(self, call: ToolCall) -> ToolOutcome:
        return ToolOutcome(call.id, f"vault entry {call.input['name']}: ok", is_error=call.input.get("fail", False))


@pytest.mark.django_db(transaction=True)
async def test_a_turn_records_each_calls_input_masked_and_its_result(user, agent, fake):
    fake.script(
        Reply(tool_uses=[
            ToolUse("fetch_secret", {"name": "db", "auth": {"Password": "input-secret-1"}}),
            ToolUse("fetch_secret", {"name": "api", "fail": True, "headers": [{"X-Api-Key": "input-secret-2"}]}),
        ], stop_reason="tool_use"),
        Reply(text=["Done."]),
    )  # fmt: skip
    plan = await sync_to_async(runs.turn_begin)(user=user, text="go", agent_slug="helper")
    plan.request = dataclasses.replace(plan.request, tools=VaultTools(), max_turns=3)
    await asyncio.wait_for(runs.TurnRunner(plan).start(), 10)

    events = [e async for e in AuditEvent.objects.filter(kind="tool_call").order_by("id")]
    assert [(e.tool, e.outcome, e.source, e.session_id, e.actor_id, e.approval) for e in events] == [
        ("fetch_secret", "ok", "turn", plan.session_id, user.pk, "not_required"),
        ("fetch_secret", "error", "turn", plan.session_id, user.pk, "not_required"),
    ]
    assert events[0].input == {"name": "db", "auth": "***"}
    assert events[1].input == {"name": "api", "fail": True, "headers": [{"X-Api-Key": "***"}]}
    assert [(e.result_preview, e.result_digest) for e in events] == [
        ("vault entry db: ok", sha256("vault entry db: ok")), ("vault entry api: ok", sha256("vault entry api: ok"))
    ]
    stored = await sync_to_async(lambda: list(AuditEvent.objects.values_list("input", flat=True)))()
    assert "input-secret" not in repr(stored)


@pytest.fixture
def cli_fake(settings):
    settings.ANTHROPIC_MAX_RETRIES = 0
    settings.ANTHROPIC_API_KEY = "sk-test-key"
    settings.ANTHROPIC_MODEL = "claude-test-1"
    with fake_anthropic_server() as server:
        settings.ANTHROPIC_BASE_URL = server.base_url
        yield server


@pytest.mark.django_db(transaction=True)
def test_a_cli_run_records_its_calls_inputs_masked_and_results(cli_fake, make_user, tmp_path):
    admin = make_user(is_staff=True, is_superuser=True)
    (tmp_path / "a.txt").write_text("hello from the file")
    cli_fake.script(
        Reply(tool_uses=[ToolUse("read_file", {"path": "a.txt"}),
                         ToolUse("read_file", {"path": "a.txt", "access_token": "cli-secret-1"})],
              stop_reason="tool_use"),
        Reply(text=["It says hello."]),
    )  # fmt: skip
    call_command("run_orchestrator", "-m", "Read it", "--workspace-dir", str(tmp_path), stdout=io.StringIO())

    events = list(AuditEvent.objects.filter(kind="tool_call").order_by("id"))
    expected = ("read_file", "cli", admin.pk, "not_required")
    assert [(e.tool, e.source, e.actor_id, e.approval) for e in events] == [expected, expected]
    assert [(e.input, e.outcome) for e in events] == [
        ({"path": "a.txt"}, "ok"), ({"path": "a.txt", "access_token": "***"}, "error")
    ]
    results = UserAgentSession.objects.get().messages.get(role="user", seq__gt=1).content
    assert "hello from the file" in events[0].result_preview
    assert [e.result_digest for e in events] == [sha256(r["content"]) for r in results]
    assert [e.result_preview for e in events] == [r["content"][:RESULT_PREVIEW_CHARS] for r in results]
