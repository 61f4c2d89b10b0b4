"""The CLI (run_orchestrator) obeys budgets: refused before the model when used up, and a tool loop
crossing it is cut before its next call; its usage and tool calls are counted and audited."""

from __future__ import annotations

import io

import pytest
from django.core.management import CommandError, call_command

from agents.models import UserAgentSession
from audit.models import AuditEvent
from config.testing.fake_anthropic import Reply, ToolUse, fake_anthropic_server
from usage.models import UsageCounter
from usage.services import month_start, usage_add

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def cli_fake(settings):
    settings.ANTHROPIC_MAX_RETRIES = 0
    settings.ANTHROPIC_API_KEY = "sk-test-key"
    settings.ANTHROPIC_MODEL = "claude-test-1"
    with fake_anthropic_server() as server:
        settings.ANTHROPIC_BASE_URL = server.base_url
        yield server


def run(*args: str) -> str:
    out = io.StringIO()
    call_command("run_orchestrator", *args, stdout=out)
    return out.getvalue()


def test_a_used_up_budget_refuses_the_run_before_the_model(cli_fake, make_user, tmp_path, settings):
    admin = make_user(is_staff=True, is_superuser=True)
    settings.BUDGET_USER_MONTHLY_TOKENS = 10
    usage_add(user_id=admin.pk, usage={"output_tokens": 10}, cost=None)
    with pytest.raises(CommandError, match="Your monthly token budget is used up"):
        run("-m", "Hi", "--workspace-dir", str(tmp_path))
    assert cli_fake.requests == []


def test_a_tool_loop_crossing_the_budget_is_cut_and_its_usage_and_tools_recorded(cli_fake, make_user, tmp_path, settings):
    admin = make_user(is_staff=True, is_superuser=True)
    settings.BUDGET_USER_MONTHLY_TOKENS = 30
    (tmp_path / "a.txt").write_text("hello")
    settings.PRICE_DEFAULT_INPUT_PER_MTOK = "1000000"  # 1 per token: easy to check
    cli_fake.script(
        Reply(text=["Reading."], tool_uses=[ToolUse("read_file", {"path": "a.txt"})], stop_reason="tool_use",
              output_tokens=20),
        Reply(text=["never"]),
    )  # fmt: skip
    with pytest.raises(CommandError, match="budget"):
        run("-m", "Read it", "--workspace-dir", str(tmp_path))
    assert len(cli_fake.requests) == 1
    session = UserAgentSession.objects.get()
    answers = list(session.messages.filter(role="assistant").order_by("seq"))
    assert [(a.status, a.error_code) for a in answers] == [("complete", ""), ("error", "budget_exceeded")]
    assert answers[0].cost == 12  # 12 input tokens × 1; no output price
    counter = UsageCounter.objects.get(user=admin, month=month_start())
    assert (counter.input_tokens, counter.output_tokens, counter.cost) == (12, 20, 12)
    event = AuditEvent.objects.get(kind="tool_call")
    assert (event.tool, event.outcome, event.source, event.actor_id, event.session_id) == (
        "read_file", "ok", "cli", admin.pk, session.pk
    )
