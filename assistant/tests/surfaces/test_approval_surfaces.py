"""Approvals on each surface (issue 28): the run API's streams and REST decisions, code assistance,
`/v1` (held calls denied with a result saying why), and the CLI (--approve, or denied with no one
to ask). The turn mechanics are in assistant/tests/runs/test_approvals.py."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
from asgiref.sync import sync_to_async
from django.core.management import call_command

from agents.models import AIAgent, UserAgentSession
from assistant.tests.conftest import token_for
from assistant.tests.runs.test_approvals import script_write, the_note, writer_agent  # noqa: F401 (fixture)
from assistant.tests.surfaces.test_run_api import body_of, client_for, sse_events
from assistant.tests.surfaces.test_sse import PATH as CODE_ASSISTANCE
from assistant.tests.surfaces.test_sse import client_for as code_client_for
from assistant.tests.surfaces.test_sse import events_of
from audit.models import AuditEvent
from config.asgi import application
from config.testing.asgi import asgi_request

pytestmark = pytest.mark.django_db(transaction=True)

RUN = "/api/v1/agents/helper/run"


async def paused_over_the_run_api(client) -> list[dict]:
    response = await client.run({"message": "Save a note"})
    assert response.status_code == 200
    return [data for _, data in sse_events(await body_of(response))]


async def test_the_run_api_streams_the_request_and_rest_decides_and_the_events_go_on(
    user, make_user, writer_agent, fake  # noqa: F811
):
    write, _ = script_write(fake)
    client = await client_for(user)
    events = await paused_over_the_run_api(client)
    assert [e["type"] for e in events][-2:] == ["approval_request", "result"]
    request, result = events[-2], events[-1]
    assert result["status"] == "awaiting_approval" and request["tool_use_id"] == write.id
    session_id = events[0]["session_id"]
    decide = f"/api/v1/sessions/{session_id}/approvals/{request['approval_id']}"
    headers = client.headers

    listed = await client.client.get("/api/v1/approvals", headers=headers)
    assert listed.status_code == 200
    (pending,) = listed.json()["results"]
    assert pending["approval_id"] == request["approval_id"] and pending["name"] == "write_file"
    assert pending["input"] == write.input and pending["agent"] == "helper" and pending["status"] == "pending"
    assert (await client.client.get("/api/v1/approvals?status=allowed", headers=headers)).json()["results"] == []
    bad_filter = await client.client.get("/api/v1/approvals?status=maybe", headers=headers)
    assert bad_filter.status_code == 400 and "status" in bad_filter.json()["detail"]["fields"]

    # Someone else: nothing to see, nothing to decide.
    mallory = await client_for(await sync_to_async(make_user)(email="mallory@example.com"))
    assert (await mallory.client.get("/api/v1/approvals", headers=mallory.headers)).json()["results"] == []
    theirs = await mallory.client.post(decide, {"decision": "allow"}, content_type="application/json",
                                       headers=mallory.headers)  # fmt: skip
    assert theirs.status_code == 404

    bad = await client.client.post(decide, {"decision": "yes"}, content_type="application/json", headers=headers)
    assert bad.status_code == 400 and "decision" in bad.json()["detail"]["fields"]
    long = await client.client.post(decide, {"decision": "deny", "reason": "x" * 2001}, content_type="application/json",
                                    headers=headers)  # fmt: skip
    assert long.status_code == 400 and "reason" in long.json()["detail"]["fields"]
    unknown = await client.client.post(f"/api/v1/sessions/{session_id}/approvals/not-an-id", {"decision": "allow"},
                                       content_type="application/json", headers=headers)  # fmt: skip
    assert unknown.status_code == 404
    busy = await client.run({"message": "And?", "session_id": session_id})
    assert busy.status_code == 409 and busy.json()["detail"]["code"] == "approval_pending"

    decided = await client.client.post(decide, {"decision": "allow"}, content_type="application/json", headers=headers)
    assert decided.status_code == 202
    assert decided.json()["status"] == "allowed" and decided.json()["resumed"] is True
    rest = [data for _, data in sse_events(await body_of(await client.events(session_id, after=result["seq"])))]
    assert [e["type"] for e in rest] == ["approval_decision", "tool_result", "text_delta", "result"]
    assert rest[-1]["status"] == "complete"
    assert await sync_to_async(the_note)(session_id) == "hello"

    again = await client.client.post(decide, {"decision": "deny"}, content_type="application/json", headers=headers)
    assert again.status_code == 409 and again.json()["detail"]["code"] == "already_decided"
    audited = await AuditEvent.objects.filter(kind="tool_call", tool="write_file").aget()
    assert audited.approval == "allow" and audited.approved_by_id == user.pk and audited.outcome == "ok"
    assert audited.input == write.input and audited.duration_ms is not None


async def test_the_ai_sdk_v5_stream_carries_the_request_as_a_data_part(user, writer_agent, fake):  # noqa: F811
    write, _ = script_write(fake)
    client = await client_for(user)
    response = await client.run({"message": "Save a note"}, protocol="v5")
    raw = await body_of(response)
    chunks = [json.loads(line[6:]) for line in raw.splitlines() if line.startswith("data: {")]
    (part,) = [c for c in chunks if c["type"] == "data-approval-request"]
    assert part["data"]["toolCallId"] == write.id and part["data"]["toolName"] == "write_file"
    assert part["id"] == part["data"]["approvalId"] and part["data"]["input"] == write.input
    finish = chunks[-1]
    assert finish["type"] == "finish" and finish["finishReason"] == "tool-calls"
    assert finish["messageMetadata"]["status"] == "awaiting_approval"
    assert raw.rstrip().endswith("data: [DONE]")


async def test_code_assistance_says_approval_is_needed_and_where_to_decide(user, writer_agent, fake, settings):  # noqa: F811
    settings.CODE_ASSISTANCE_AGENT = writer_agent.slug
    script_write(fake)
    client = await code_client_for(user)
    events = await events_of(await client.post(CODE_ASSISTANCE, {"prompt": "Save a note"}, content_type="application/json"))
    asking = next(e for e in events if "approval" in e)
    session_id = asking["approval"]["session_id"]
    assert asking["type"] == "system_status" and asking["approval"]["name"] == "write_file"
    assert f"/api/v1/sessions/{session_id}/approvals/{asking['approval']['approval_id']}" in asking["content"]
    assert events[-1]["done"] is True and events[-1]["stop_reason"] == "approval_required"
    assert await sync_to_async(the_note)(session_id) is None


async def test_v1_denies_a_held_call_at_once_and_the_model_reads_why(user, writer_agent, fake):  # noqa: F811
    write, listing = script_write(fake, then="I could not save it.")
    token = await sync_to_async(token_for)(user)
    body = json.dumps({"model": "helper", "messages": [{"role": "user", "content": "Save a note"}]}).encode()
    answer = await asgi_request(
        application, "POST", "/v1/chat/completions",
        headers={"authorization": f"Bearer {token}", "content-type": "application/json"}, body=body,
    )  # fmt: skip
    assert answer.status == 200, answer.body
    completion = json.loads(answer.body)
    assert completion["choices"][0]["message"]["content"].endswith("I could not save it.")
    results = {r["tool_use_id"]: r for r in fake.requests[1].body["messages"][-1]["content"]}
    assert results[write.id]["is_error"] is True and "approval" in results[write.id]["content"]
    assert results[listing.id]["is_error"] is False  # the call that needs no approval ran
    session = await UserAgentSession.objects.aget(owner=user)
    assert await sync_to_async(the_note)(session.pk) is None


def run_cli(*args: str) -> list[dict]:
    out = io.StringIO()
    call_command("run_orchestrator", "--json", *args, stdout=out)
    return [json.loads(line) for line in out.getvalue().splitlines()]


@pytest.mark.parametrize("approve", [True, False])
def test_the_cli_allows_with_approve_and_denies_when_no_one_can_be_asked(
    approve, make_user, writer_agent, fake, settings  # noqa: F811
):
    make_user(email="admin@example.com", is_staff=True, is_superuser=True)
    AIAgent.objects.filter(pk=writer_agent.pk).update(approval_required=["write_file"])
    write, _ = script_write(fake)
    workspace = Path(settings.WORKSPACES_DIR)
    events = run_cli("--agent", "helper", "-m", "Save a note", "--workspace-dir", str(workspace),
                     *(["--approve"] if approve else []))  # fmt: skip
    (decision,) = [e for e in events if e["type"] == "approval_decision"]
    assert decision["tool_use_id"] == write.id
    assert decision["decision"] == ("allowed" if approve else "denied")
    result = next(e for e in events if e["type"] == "tool_result" and e["id"] == write.id)
    assert result["is_error"] is (not approve)
    assert ((workspace / "note.txt").exists()) is approve
    audited = AuditEvent.objects.get(kind="tool_call", tool="write_file")
    assert audited.approval == ("allow" if approve else "deny") and audited.approved_by_email.startswith("cli: ")

