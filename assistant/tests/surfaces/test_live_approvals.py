"""Approvals on real server processes (issue 28): a turn paused for a decision outlives its process
(stopped, started again, decided on the new one: the tool runs once, the answer completes), and a
decision made on one process resumes the turn there while a socket on another watches it (Redis).

The tool is a real MCP server's (`write_note` of the notes server over streamable HTTP, a user's own
integration reached through the egress policy); the model is the fake Messages API."""

from __future__ import annotations

import asyncio
import json

import pytest
import requests

from assistant.tests.mcp_servers import notes_over_http
from assistant.tests.surfaces.test_live_servers import open_socket, receive_until, seed_over_api
from assistant.tests.surfaces.test_live_session_ends import fake_model, two_servers  # noqa: F401 (fixtures)
from config.testing.fake_anthropic import Reply, ToolUse
from config.testing.processes import (
    database_url_for_children,
    http_json,
    running_server,
)

pytestmark = pytest.mark.django_db(transaction=True)

SECRET = "notes-secret-approvals-0123"


@pytest.fixture
def notes(tmp_path):
    """The notes server over streamable HTTP; it writes its notes in its own directory."""
    directory = tmp_path / "notes"
    directory.mkdir()
    with notes_over_http(SECRET, cwd=directory) as url:
        yield url, directory


def agent_with_held_notes(base: str, token: str, slug: str, notes_url: str) -> None:
    """The user's agent gets the notes server (their own integration); writing a note needs approval."""
    status, integration = http_json(
        "POST", f"{base}/api/v1/integrations",
        {"provider": "custom", "name": "notes", "mcp_server": {"type": "http", "url": notes_url}, "credentials": SECRET},
        token,
    )  # fmt: skip
    assert status == 201, integration
    status, agents = http_json("GET", f"{base}/api/v1/agents?slug={slug}", None, token)
    agent = next(a for a in agents["results"] if a["slug"] == slug)
    status, agent = http_json(
        "PATCH", f"{base}/api/v1/agents/{agent['id']}",
        {"integrations": [integration["id"]], "approval_required": ["notes__write_note"], "max_turns": 4}, token,
    )  # fmt: skip
    assert status == 200, agent
    assert agent["approval_required"] == ["notes__write_note"]


def events_after(base: str, token: str, session_id: int, after: int) -> list[dict]:
    """GET /api/v1/sessions/{id}/events from `after` to the end of the turn, as a client reads it."""
    response = requests.get(
        f"{base}/api/v1/sessions/{session_id}/events", params={"after": after},
        headers={"Authorization": f"Bearer {token}"}, timeout=30,
    )  # fmt: skip
    assert response.status_code == 200, response.text
    return [json.loads(line[len("data: "):]) for line in response.text.splitlines() if line.startswith("data: ")]


def script_note(fake_model) -> ToolUse:
    call = ToolUse("notes__write_note", {"name": "minutes.txt", "text": "approved words"})
    fake_model.script(
        Reply(text=["I'll write it."], tool_uses=[call], stop_reason="tool_use"),
        Reply(text=["Written."]),
    )
    return call


async def pause_a_turn(base: str, token: str, slug: str) -> list[dict]:
    socket = await open_socket(base, token)
    await socket.send(json.dumps({"type": "start", "agent": slug, "message": "Write the minutes"}))
    frames = await receive_until(socket, "result", "error")
    await socket.close()
    assert [f["type"] for f in frames][-2:] == ["approval_request", "result"], frames
    assert frames[-1]["status"] == "awaiting_approval"
    return frames


async def test_a_paused_turn_survives_a_restart_and_the_new_process_runs_the_tool_once(tmp_path, fake_model, notes):
    notes_url, notes_dir = notes
    env = {"DATABASE_URL": database_url_for_children(tmp_path), "ANTHROPIC_MAX_RETRIES": "0",
           "OUTBOUND_ALLOWED_HOSTS": "127.0.0.1"}  # fmt: skip
    call = script_note(fake_model)
    with running_server(env) as base:
        token, slug = await asyncio.to_thread(seed_over_api, base, fake_model.base_url)
        await asyncio.to_thread(agent_with_held_notes, base, token, slug, notes_url)
        frames = await pause_a_turn(base, token, slug)
    # The process is gone; nothing ran.
    assert not (notes_dir / "minutes.txt").exists()
    session_id, request = frames[0]["session_id"], frames[-2]
    assert request["name"] == "notes__write_note" and request["input"] == call.input

    with running_server(env) as base:
        status, pending = await asyncio.to_thread(http_json, "GET", f"{base}/api/v1/approvals", None, token)
        assert status == 200 and [p["approval_id"] for p in pending["results"]] == [request["approval_id"]]
        decide = f"{base}/api/v1/sessions/{session_id}/approvals/{request['approval_id']}"
        status, decided = await asyncio.to_thread(http_json, "POST", decide, {"decision": "allow"}, token)
        assert status == 202, decided
        assert decided["status"] == "allowed" and decided["resumed"] is True
        rest = await asyncio.to_thread(events_after, base, token, session_id, frames[-1]["seq"])
        assert [f["type"] for f in rest] == ["approval_decision", "tool_result", "text_delta", "result"]
        assert rest[1]["output"] == "wrote minutes.txt" and rest[-1]["status"] == "complete"
        assert [f["seq"] for f in rest] == list(range(frames[-1]["seq"] + 1, frames[-1]["seq"] + 5))

        status, again = await asyncio.to_thread(http_json, "POST", decide, {"decision": "allow"}, token)
        assert status == 409 and again["detail"]["code"] == "already_decided"
        status, pending = await asyncio.to_thread(http_json, "GET", f"{base}/api/v1/approvals", None, token)
        assert pending["results"] == []
        status, page = await asyncio.to_thread(http_json, "GET", f"{base}/api/v1/sessions/{session_id}/messages", None, token)
    assert (notes_dir / "minutes.txt").read_text() == "approved words"
    results = [b for m in page["results"] for b in m["content"] if b.get("type") == "tool_result"]
    assert len(results) == 1 and results[0]["tool_use_id"] == call.id  # one result: the tool ran once
    assert [m["status"] for m in page["results"]] == ["complete"] * 4
    assert len(fake_model.requests) == 2


async def test_a_decision_on_one_process_resumes_the_turn_a_socket_on_another_watches(two_servers, fake_model, notes):
    server_a, server_b = two_servers
    notes_url, notes_dir = notes
    token, slug = await asyncio.to_thread(seed_over_api, server_a, fake_model.base_url)
    await asyncio.to_thread(agent_with_held_notes, server_a, token, slug, notes_url)
    script_note(fake_model)
    frames = await pause_a_turn(server_a, token, slug)
    session_id, request = frames[0]["session_id"], frames[-2]

    watcher = await open_socket(server_a, token)  # a reloaded page on process A
    await watcher.send(json.dumps({"type": "resume", "session_id": session_id}))
    replay = await receive_until(watcher, "result")
    resumed = json.loads(await asyncio.wait_for(watcher.recv(), 5))
    assert [f["seq"] for f in replay] == [f["seq"] for f in frames]
    assert resumed["running"] is False and [p["approval_id"] for p in resumed["pending_approvals"]] == [request["approval_id"]]

    decider = await open_socket(server_b, token)  # the decision reaches process B
    await decider.send(json.dumps({"type": "approve", "session_id": session_id, "approval_id": request["approval_id"],
                                   "decision": "allow"}))  # fmt: skip
    on_b = await receive_until(decider, "result", "error")
    on_a = await receive_until(watcher, "result", "error")
    await decider.close()
    await watcher.close()
    for seen in (on_a, on_b):
        assert [f["type"] for f in seen] == ["approval_decision", "tool_result", "text_delta", "result"], seen
    assert [f["seq"] for f in on_a] == [f["seq"] for f in on_b]
    assert (notes_dir / "minutes.txt").read_text() == "approved words"
    assert len(fake_model.requests) == 2
