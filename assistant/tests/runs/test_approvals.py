"""Approvals (issue 28): a held tool call waits for its user's decision, runs once when allowed, never
when denied or expired, and the turn goes on from the stored messages wherever the decision lands."""

from __future__ import annotations

import asyncio
import threading

import pytest
from asgiref.sync import sync_to_async

from agents.models import AIAgent, Message
from agents.workspaces import workspace_path
from assistant import runs
from assistant.models import Approval
from assistant.runs.approvals import approval_decide, approvals_expire, resume_if_decided
from assistant.runs.decisions import approvals_expire_sweep
from assistant.tests.conftest import connect, frames_until
from config.testing.fake_anthropic import Reply, ToolUse

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def writer_agent(agent):
    """An organization agent with the file tools whose writes wait for approval."""
    agent.workspace_tools = AIAgent.WorkspaceTools.FILES
    agent.approval_required = ["Write"]  # Claude Code's name for write_file, as in allowed_tools
    agent.max_turns = 5
    agent.save()
    return agent


def script_write(fake, *, then: str | None = "Done.") -> tuple[ToolUse, ToolUse]:
    """The model asks to write a note and list the directory; after the results, says `then`."""
    write = ToolUse("write_file", {"path": "note.txt", "content": "hello"})
    listing = ToolUse("list_directory", {"path": "."})
    fake.script(Reply(text=["Writing it."], tool_uses=[write, listing], stop_reason="tool_use"))
    if then is not None:
        fake.script(Reply(text=[then]))
    return write, listing


async def pause(user, fake, *, then: str | None = "Done.") -> tuple[object, list[dict], ToolUse]:
    write, listing = script_write(fake, then=then)
    socket = await connect(user)
    await socket.send_json_to({"type": "start", "agent": "helper", "message": "Save a note"})
    frames = await frames_until(socket, "result", "error")
    return socket, frames, write


async def runners_ended(session_id: int) -> None:
    """Until the session's runners have ended: a pausing runner looks for early decisions after its
    last event (and may resume the turn itself), so a test that plays a decision's race waits for it."""
    tasks = [t for t in asyncio.all_tasks() if t.get_name() == f"turn-{session_id}"]
    await asyncio.wait_for(asyncio.gather(*tasks), 10)


def the_note(session_id: int) -> str | None:
    path = workspace_path(session_id) / "note.txt"
    return path.read_text() if path.exists() else None


async def test_a_held_call_waits_while_the_others_run_and_the_turn_holds_nothing(user, writer_agent, fake, settings):
    socket, frames, write = await pause(user, fake, then=None)
    session_id = frames[0]["session_id"]
    kinds = [f["type"] for f in frames]
    assert kinds == ["session", "text_delta", "tool_use", "tool_use", "tool_result", "approval_request", "result"]
    request = frames[5]
    assert request["tool_use_id"] == write.id and request["name"] == "write_file"
    assert request["input"] == {"path": "note.txt", "content": "hello"} and request["expires_at"]
    assert frames[4]["name"] == "list_directory" and frames[4]["is_error"] is False  # the other call ran
    assert frames[-1]["status"] == "awaiting_approval" and frames[-1]["stop_reason"] == "approval_required"

    assert await sync_to_async(the_note)(session_id) is None  # not written
    approval = await Approval.objects.aget(pk=request["approval_id"])
    assert approval.status == "pending" and approval.session_id == session_id
    stored = [m async for m in Message.objects.filter(session_id=session_id).order_by("seq")]
    assert [(m.role, m.status) for m in stored] == [("user", "complete"), ("assistant", "complete"), ("user", "awaiting")]
    assert [b["tool_use_id"] for b in stored[2].content] == [frames[3]["id"]]  # the listing's result only
    for _ in range(200):  # the runner ends just after its last event (it looks for early decisions)
        if runs.running_turn(session_id) is None:
            break
        await asyncio.sleep(0.01)
    assert runs.running_turn(session_id) is None
    assert not await sync_to_async(runs.turn_is_running)(user=user, session_id=session_id)

    # Not counted as running: with a limit of one, another session's turn starts.
    settings.ASSISTANT_MAX_CONCURRENT_TURNS_PER_USER = 1
    fake.script(Reply(text=["Other."]))
    await socket.send_json_to({"type": "start", "agent": "helper", "message": "Something else"})
    other = await frames_until(socket, "result", "error")
    assert other[-1]["type"] == "result" and other[-1]["session_id"] != session_id
    # The paused session takes no new turn until its calls are decided.
    await socket.send_json_to({"type": "start", "session_id": session_id, "message": "And?"})
    refused = await socket.receive_json_from(5)
    assert refused["type"] == "error" and refused["code"] == "approval_pending"
    await socket.disconnect()


async def test_allowed_the_tool_runs_once_and_the_turn_goes_on(user, writer_agent, fake):
    socket, frames, write = await pause(user, fake)
    session_id, approval_id = frames[0]["session_id"], frames[5]["approval_id"]
    await socket.send_json_to(
        {"type": "approve", "session_id": session_id, "approval_id": approval_id, "decision": "allow"}
    )
    rest = await frames_until(socket, "result", "error")
    kinds = [f["type"] for f in rest]
    assert kinds == ["approval_decision", "tool_result", "text_delta", "result"]
    assert rest[0]["decision"] == "allowed" and rest[0]["decided_by"] == user.email
    assert rest[1]["id"] == write.id and rest[1]["is_error"] is False
    assert rest[-1]["status"] == "complete"
    assert [f["seq"] for f in frames + rest] == list(range(1, len(frames + rest) + 1))  # one seq run
    assert await sync_to_async(the_note)(session_id) == "hello"

    # The model got both results, in the order it asked.
    results = fake.requests[1].body["messages"][-1]["content"]
    assert [r["tool_use_id"] for r in results] == [write.id, frames[3]["id"]]
    assert all(r["is_error"] is False for r in results)

    # A second decision is refused; nothing runs again.
    await socket.send_json_to({"type": "approve", "session_id": session_id, "approval_id": approval_id, "decision": "deny"})
    again = await socket.receive_json_from(5)
    assert again["type"] == "error" and again["code"] == "already_decided"
    assert len(fake.requests) == 2
    stored = [m async for m in Message.objects.filter(session_id=session_id).order_by("seq")]
    assert [(m.role, m.status) for m in stored][-2:] == [("user", "complete"), ("assistant", "complete")]
    await socket.disconnect()


async def test_denied_the_model_reads_why_and_nothing_is_written(user, writer_agent, fake):
    socket, frames, write = await pause(user, fake)
    session_id, approval_id = frames[0]["session_id"], frames[5]["approval_id"]
    await socket.send_json_to({"type": "approve", "session_id": session_id, "approval_id": approval_id,
                               "decision": "deny", "reason": "Not that file"})  # fmt: skip
    rest = await frames_until(socket, "result", "error")
    assert [f["type"] for f in rest] == ["approval_decision", "tool_result", "text_delta", "result"]
    assert rest[1]["is_error"] is True and "denied" in rest[1]["output"]
    denied = next(r for r in fake.requests[1].body["messages"][-1]["content"] if r["tool_use_id"] == write.id)
    assert denied["is_error"] is True and "Not that file" in denied["content"]
    assert await sync_to_async(the_note)(session_id) is None
    await socket.disconnect()


async def test_only_the_owner_decides_and_bad_decisions_are_refused_by_field(user, make_user, writer_agent, fake):
    socket, frames, _ = await pause(user, fake)
    session_id, approval_id = frames[0]["session_id"], frames[5]["approval_id"]
    other = await sync_to_async(make_user)(email="mallory@example.com")
    with pytest.raises(runs.TurnRefused) as refused:
        await sync_to_async(approval_decide)(user=other, session_id=session_id, approval_id=approval_id, decision="allow")
    assert refused.value.code == "not_found"
    for decision, reason, field in (("yes", "", "decision"), ("allow", 5, "reason"), ("allow", "x" * 2001, "reason")):
        with pytest.raises(runs.TurnRefused) as refused:
            await sync_to_async(approval_decide)(
                user=user, session_id=session_id, approval_id=approval_id, decision=decision, reason=reason
            )
        assert refused.value.code == "invalid" and refused.value.field == field
    with pytest.raises(runs.TurnRefused) as refused:
        await sync_to_async(approval_decide)(user=user, session_id=session_id, approval_id="not-a-uuid", decision="allow")
    assert refused.value.code == "not_found"
    assert (await Approval.objects.aget(pk=approval_id)).status == "pending"
    assert await sync_to_async(the_note)(session_id) is None
    await socket.disconnect()


async def test_decisions_racing_run_the_tool_once(user, writer_agent, fake):
    """Many decisions of one approval at once, on threads of their own (as on several processes):
    one is stored, the others refused, and only its turn resumes."""
    socket, frames, _ = await pause(user, fake)
    session_id, approval_id = frames[0]["session_id"], frames[5]["approval_id"]
    outcomes: list = []
    barrier = threading.Barrier(4)

    def decide():
        barrier.wait()
        try:
            outcomes.append(approval_decide(user=user, session_id=session_id, approval_id=approval_id, decision="allow"))
        except runs.TurnRefused as refused:
            outcomes.append(refused.code)

    await asyncio.gather(*(asyncio.to_thread(decide) for _ in range(4)))
    plans = [o.plan for o in outcomes if not isinstance(o, str)]
    assert len(plans) == 1 and plans[0] is not None
    assert sorted(o for o in outcomes if isinstance(o, str)) == ["already_decided"] * 3
    # Whoever looks again later (the pausing runner) finds it claimed.
    assert await sync_to_async(resume_if_decided)(plans[0].assistant_message_id) is None
    await runs.turn_start(plans[0])
    rest = await frames_until(socket, "result", "error")
    assert rest[-1]["status"] == "complete"
    assert await sync_to_async(the_note)(session_id) == "hello"
    assert len(fake.requests) == 2
    await socket.disconnect()


async def test_a_decision_made_before_the_pause_is_stored_resumes_the_turn(user, writer_agent, fake):
    """The decision lands between the approval_request event and the awaiting status: the runner that
    paused looks again once it stored it."""
    socket, frames, _ = await pause(user, fake)
    session_id, approval_id = frames[0]["session_id"], frames[5]["approval_id"]
    await runners_ended(session_id)  # its own look for decisions done: this test plays that look
    message = await Message.objects.aget(session_id=session_id, status="awaiting")
    await Message.objects.filter(pk=message.pk).aupdate(status="streaming")  # as if not yet stored
    decided = await sync_to_async(approval_decide)(user=user, session_id=session_id, approval_id=approval_id,
                                                   decision="allow")  # fmt: skip
    assert decided.plan is None  # nothing to claim yet
    await Message.objects.filter(pk=message.pk).aupdate(status="awaiting")  # the runner's write lands
    plan = await sync_to_async(resume_if_decided)(message.pk)
    assert plan is not None
    runner = await runs.turn_start(plan)
    await asyncio.wait_for(runner.task, 10)
    last = await Message.objects.filter(session_id=session_id).order_by("-seq").afirst()
    assert (last.role, last.status, last.text) == ("assistant", "complete", "Done.")
    assert await sync_to_async(the_note)(session_id) == "hello"
    await socket.disconnect()


async def test_an_undecided_call_expires_denied_and_the_turn_goes_on(user, writer_agent, fake, settings):
    settings.ASSISTANT_APPROVAL_TIMEOUT = 0
    socket, frames, write = await pause(user, fake)
    session_id, approval_id = frames[0]["session_id"], frames[5]["approval_id"]
    assert await approvals_expire_sweep() == 1
    rest = await frames_until(socket, "result", "error")
    assert [f["type"] for f in rest] == ["approval_decision", "tool_result", "text_delta", "result"]
    assert rest[0]["decision"] == "expired" and rest[0]["decided_by"] is None
    expired = next(r for r in fake.requests[1].body["messages"][-1]["content"] if r["tool_use_id"] == write.id)
    assert expired["is_error"] is True and "expired" in expired["content"]
    assert await sync_to_async(the_note)(session_id) is None
    assert await sync_to_async(approvals_expire)() == []  # once
    await socket.send_json_to({"type": "approve", "session_id": session_id, "approval_id": approval_id, "decision": "allow"})
    late = await socket.receive_json_from(5)
    assert late["code"] == "already_decided"
    await socket.disconnect()


async def test_resuming_past_the_running_turns_limit_is_refused_and_decides_nothing(user, writer_agent, fake, settings):
    socket, frames, _ = await pause(user, fake, then=None)
    session_id, approval_id = frames[0]["session_id"], frames[5]["approval_id"]
    settings.ASSISTANT_MAX_CONCURRENT_TURNS_PER_USER = 1
    fake.script(Reply(text=["long ", "answer"], pause_after=1))
    await socket.send_json_to({"type": "start", "agent": "helper", "message": "Busy"})
    await frames_until(socket, "text_delta")
    await socket.send_json_to({"type": "approve", "session_id": session_id, "approval_id": approval_id, "decision": "allow"})
    refused = await socket.receive_json_from(5)
    while refused["type"] != "error":
        refused = await socket.receive_json_from(5)
    assert refused["code"] == "too_many_turns" and refused["seq"] is None
    assert (await Approval.objects.aget(pk=approval_id)).status == "pending"
    fake.release()
    await socket.disconnect()


async def test_staff_see_approvals_in_admin_read_only(user, make_user, writer_agent, fake, client):
    socket, frames, write = await pause(user, fake)
    staff = await sync_to_async(make_user)(email="staff@example.com", is_staff=True, is_superuser=True)
    await sync_to_async(client.force_login)(staff)
    listing = await sync_to_async(client.get)("/admin/assistant/approval/?status=pending")
    assert listing.status_code == 200 and b"write_file" in listing.content and user.email.encode() in listing.content
    page = await sync_to_async(client.get)(f"/admin/assistant/approval/{frames[5]['approval_id']}/change/")
    assert page.status_code == 200 and b"note.txt" in page.content
    assert b'name="_save"' not in page.content  # nothing to change
    await socket.disconnect()
