"""Audit events in admin: filtered by agent, user, tool, outcome, kind and approval, searched, shown
with the input pretty-printed, the preview and the digest; nobody adds, changes or deletes one."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest
from django.utils.html import escape

from agents.models import AIAgent, UserAgentSession
from audit.models import AuditEvent
from audit.services import ToolApproval, ToolCallRecord, tool_calls_record

pytestmark = pytest.mark.django_db

CHANGELIST = "/admin/audit/auditevent/"


@pytest.fixture
def events(user, other_user, agent):
    """Alice's calls with helper, Bob's with writer, and a failed login."""
    writer = AIAgent.objects.create(name="Writer", slug="writer", system_prompt_text="Write.", is_active=True)
    alice = UserAgentSession.objects.create(owner=user, agent=agent)
    bob = UserAgentSession.objects.create(owner=other_user, agent=writer)
    allowed = ToolApproval("allow", other_user.pk, other_user.email, datetime(2026, 12, 1, tzinfo=timezone.utc))
    tool_calls_record(session_id=alice.pk, source="turn", calls=[
        ToolCallRecord("read_file", {"path": "notes.txt"}, False, result="alpha"),
        ToolCallRecord("run_shell", {"command": "make", "env": {"TOKEN": "t-1"}}, True, result="make: failed"),
    ])  # fmt: skip
    tool_calls_record(session_id=bob.pk, source="cli", calls=[
        ToolCallRecord("write_file", {"path": "out.md"}, False, result="written", approval=allowed),
    ])  # fmt: skip
    AuditEvent.objects.create(kind=AuditEvent.Kind.LOGIN_FAILED, actor_email="mallory@example.com", source="api")
    return {e.tool or e.kind: e for e in AuditEvent.objects.all()}


@pytest.fixture
def staff_client(client, make_user):
    client.force_login(make_user(is_staff=True, is_superuser=True))
    return client


def shown(client, query: str = "") -> set[str]:
    response = client.get(CHANGELIST + query)
    assert response.status_code == 200, response.content.decode()[:2000]
    return {e.tool or e.kind for e in response.context["cl"].result_list}


def test_the_changelist_offers_each_filter_with_the_values_present(staff_client, events):
    response = staff_client.get(CHANGELIST)
    assert response.status_code == 200
    filters = {spec.title: [choice["display"] for choice in spec.choices(response.context["cl"])]
               for spec in response.context["cl"].filter_specs}  # fmt: skip
    assert {"helper", "writer"} <= set(filters["agent"])
    assert {"alice@example.com", "bob@example.com", "mallory@example.com"} <= set(filters["actor email"])
    assert {"read_file", "run_shell", "write_file"} <= set(filters["tool"])
    assert {"OK", "Error"} <= set(filters["outcome"])
    assert {"Allowed", "Denied", "Expired (denied)", "Not required"} <= set(filters["approval"])
    assert {"Failed login", "Tool call"} <= set(filters["kind"])


def test_each_filter_narrows_the_list(staff_client, events):
    assert shown(staff_client) == {"read_file", "run_shell", "write_file", "login_failed"}
    assert shown(staff_client, "?agent=writer") == {"write_file"}
    assert shown(staff_client, "?actor_email=alice@example.com") == {"read_file", "run_shell"}
    assert shown(staff_client, "?tool=run_shell") == {"run_shell"}
    assert shown(staff_client, "?outcome__exact=error") == {"run_shell"}
    assert shown(staff_client, "?approval__exact=allow") == {"write_file"}
    assert shown(staff_client, "?approval__exact=not_required") == {"read_file", "run_shell"}
    assert shown(staff_client, "?kind__exact=login_failed") == {"login_failed"}
    assert shown(staff_client, "?agent=helper&outcome__exact=ok") == {"read_file"}


def test_search_finds_by_user_tool_and_digest(staff_client, events):
    assert shown(staff_client, "?q=mallory") == {"login_failed"}
    assert shown(staff_client, "?q=write_") == {"write_file"}
    assert shown(staff_client, f"?q={events['read_file'].result_digest}") == {"read_file"}


def test_an_event_shows_its_input_pretty_printed_masked_with_preview_and_digest(staff_client, events):
    event = events["run_shell"]
    response = staff_client.get(f"{CHANGELIST}{event.pk}/change/")
    assert response.status_code == 200
    page = response.content.decode()
    pretty = '{\n  "command": "make",\n  "env": {\n    "TOKEN": "***"\n  }\n}'
    assert "<pre>" + escape(pretty) + "</pre>" in page
    assert "t-1" not in page
    assert "make: failed" in page and event.result_digest in page
    approved = staff_client.get(f"{CHANGELIST}{events['write_file'].pk}/change/").content.decode()
    assert "bob@example.com" in approved and "Allowed" in approved
    assert staff_client.get(f"{CHANGELIST}{events['login_failed'].pk}/change/").status_code == 200  # no input


def test_nobody_adds_changes_or_deletes_an_event(staff_client, events):
    event = events["read_file"]
    assert staff_client.get(CHANGELIST + "add/").status_code == 403
    assert staff_client.get(f"{CHANGELIST}{event.pk}/delete/").status_code == 403
    changed = staff_client.post(f"{CHANGELIST}{event.pk}/change/", {"outcome": "error", "tool": "other"})
    assert changed.status_code == 403
    bulk = staff_client.post(CHANGELIST, {"action": "delete_selected", "_selected_action": [event.pk]})
    assert bulk.status_code == 200  # no such action: the list is shown again
    assert AuditEvent.objects.count() == 4
    assert AuditEvent.objects.get(pk=event.pk).tool == "read_file"
    assert 'name="_save"' not in staff_client.get(f"{CHANGELIST}{event.pk}/change/").content.decode()
