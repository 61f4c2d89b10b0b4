"""Server-side turns run with the agent's tools: real MCP servers (stdio, streamable HTTP) asked for by
the model in a websocket turn and a code-assistance SSE turn; stop during a tool call; a hanging tool;
a server that doesn't start; workspace tools and the sandboxed shell; the trust rules."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from pathlib import Path

import pytest
from asgiref.sync import sync_to_async

from agents.models import AIAgent, Integration, Message, UserAgentSession
from agents.workspaces import workspace_path
from assistant import runs
from assistant.runs.history import api_messages
from assistant.tests.conftest import connect, frames_until, wait_for_message_status
from assistant.tests.mcp_servers import NOTES_SERVER, notes_over_http
from assistant.tests.surfaces.test_sse import PATH as SSE_PATH
from assistant.tests.surfaces.test_sse import client_for as sse_client_for
from assistant.tests.surfaces.test_sse import events_of
from assistant.tools.sandbox import sandbox_available
from config.testing.fake_anthropic import Reply, ToolUse

pytestmark = pytest.mark.django_db(transaction=True)

SECRET = "notes-secret-0123456789"


@pytest.fixture(scope="module")
def http_notes():
    """The notes server over streamable HTTP on 127.0.0.1, requiring a bearer token."""
    with notes_over_http(SECRET) as url:
        yield url


def attach(agent: AIAgent, name: str, mcp_server: dict, *, credentials=None, owner=None) -> Integration:
    integration = Integration.objects.create(
        name=name, provider="custom", mcp_server=mcp_server, credentials=credentials, owner=owner
    )
    agent.integrations.add(integration)
    return integration


def stdio_notes() -> dict:
    return {"command": sys.executable, "args": [NOTES_SERVER]}


async def start(ws, message: str, **fields) -> None:
    await ws.send_json_to({"type": "start", "message": message, **({"agent": "helper"} | fields)})


def by_type(frames: list[dict], kind: str) -> list[dict]:
    return [f for f in frames if f["type"] == kind]


async def stored_messages(session_id: int) -> list[Message]:
    return [m async for m in Message.objects.filter(session_id=session_id).order_by("seq")]


# --- MCP servers in a websocket turn ------------------------------------------------------------


@pytest.mark.parametrize("transport", ["stdio", "http"])
async def test_a_websocket_turn_runs_the_agents_mcp_tool_and_stores_every_step(
    transport, user, agent, fake, http_notes
):
    if transport == "stdio":  # staff's server; its credentials reach it as an environment variable
        await sync_to_async(attach)(agent, "notes", stdio_notes(), credentials={"NOTES_TOKEN": SECRET})
        call = ToolUse("notes__whoami", {})
    else:  # the token becomes the Authorization header the server checks
        await sync_to_async(attach)(agent, "notes", {"type": "http", "url": http_notes}, credentials=SECRET)
        call = ToolUse("notes__add", {"a": 2, "b": 40})
    fake.script(
        Reply(text=["Checking."], tool_uses=[call], stop_reason="tool_use", input_tokens=11, output_tokens=5),
        Reply(text=["Done."], input_tokens=30, output_tokens=2),
    )
    ws = await connect(user)
    await start(ws, "Use the notes tool")
    frames = await frames_until(ws, "result", "error")
    await ws.disconnect()

    assert [f["type"] for f in frames] == ["session", "text_delta", "tool_use", "tool_result", "text_delta", "result"]
    assert by_type(frames, "tool_use")[0] | {"seq": 0} == {
        "type": "tool_use", "session_id": frames[0]["session_id"], "seq": 0, "id": call.id, "name": call.name,
        "input": call.input,
    }  # fmt: skip
    result = by_type(frames, "tool_result")[0]
    assert result["id"] == call.id and result["name"] == call.name and result["is_error"] is False
    if transport == "stdio":
        assert json.loads(result["output"])["token_length"] == len(SECRET)
    else:
        assert result["output"] == "42"
    final = frames[-1]
    assert final["status"] == "complete" and final["turns"] == 2
    assert final["usage"]["input_tokens"] == 41 and final["usage"]["output_tokens"] == 7

    offered = [tool["name"] for tool in fake.requests[0].body["tools"]]
    assert {"notes__add", "notes__whoami", "notes__sleep"} <= set(offered)
    assert fake.requests[1].body["messages"][-1]["content"][0]["tool_use_id"] == call.id

    stored = await stored_messages(frames[0]["session_id"])
    assert [(m.role, m.status) for m in stored] == [
        ("user", "complete"), ("assistant", "complete"), ("user", "complete"), ("assistant", "complete")
    ]  # fmt: skip
    assert stored[2].content[0]["tool_use_id"] == call.id and stored[2].content[0]["is_error"] is False
    assert (stored[1].input_tokens, stored[3].input_tokens) == (11, 30)


async def test_allowed_tools_limit_what_the_model_is_offered(user, agent, fake):
    agent.allowed_tools = ["mcp__notes__add"]
    await agent.asave()
    await sync_to_async(attach)(agent, "notes", stdio_notes())
    fake.script(Reply(text=["Hi."]))
    ws = await connect(user)
    await start(ws, "Hello")
    await frames_until(ws, "result")
    await ws.disconnect()
    assert [tool["name"] for tool in fake.requests[0].body["tools"]] == ["notes__add"]


async def test_an_agent_without_tools_sends_none(user, agent, fake):
    fake.script(Reply(text=["Hi."]))
    ws = await connect(user)
    await start(ws, "Hello")
    await frames_until(ws, "result")
    await ws.disconnect()
    assert "tools" not in fake.requests[0].body


# --- the code-assistance SSE endpoint -----------------------------------------------------------


@pytest.mark.parametrize("transport", ["stdio", "http"])
async def test_a_code_assistance_turn_runs_the_agents_mcp_tool(transport, user, code_agent, fake, http_notes):
    if transport == "stdio":
        await sync_to_async(attach)(code_agent, "notes", stdio_notes())
    else:
        await sync_to_async(attach)(code_agent, "notes", {"type": "http", "url": http_notes}, credentials=SECRET)
    call = ToolUse("notes__add", {"a": 1, "b": 2})
    fake.script(Reply(text=["Adding."], tool_uses=[call], stop_reason="tool_use"), Reply(text=["It is 3."]))
    client = await sse_client_for(user)
    response = await client.post(SSE_PATH, {"prompt": "1+2?"}, content_type="application/json")
    assert response.status_code == 200
    events = await events_of(response)
    text = "".join(e["content"] for e in events if e["type"] == "code_assistance")
    assert text == "Adding.It is 3."
    tools = [(e["content"], e["icon"]) for e in events if e["type"] == "tool_execution"]
    assert tools == [("Running notes__add", "🔧"), ("3", "🔧")]
    assert events[-1]["done"] is True
    sent_back = fake.requests[1].body["messages"][-1]["content"][0]
    assert sent_back == {"type": "tool_result", "tool_use_id": call.id, "content": "3", "is_error": False}
    # The turn gives its servers back after its result went out: let it end before the test's loop does.
    session = await UserAgentSession.objects.filter(owner=user).alatest("pk")
    assert await eventually(lambda: runs.running_turn(session.pk) is None)


# --- stop, hanging tools, failed servers --------------------------------------------------------


async def test_stop_during_a_slow_tool_call_cancels_it_and_the_next_turn_has_a_valid_history(user, agent, fake):
    await sync_to_async(attach)(agent, "notes", stdio_notes())
    call = ToolUse("notes__sleep", {"seconds": 60})
    fake.script(Reply(text=["Waiting."], tool_uses=[call], stop_reason="tool_use"), Reply(text=["Next answer."]))
    ws = await connect(user)
    await start(ws, "Sleep")
    frames = await frames_until(ws, "tool_use")
    session_id = frames[0]["session_id"]
    await asyncio.sleep(0.3)  # the call is on its way to the server
    loop = asyncio.get_running_loop()
    stopped_at = loop.time()
    await ws.send_json_to({"type": "stop", "session_id": session_id})
    frames = await frames_until(ws, "result")
    assert loop.time() - stopped_at < 10  # not the tool's 60 s
    assert await eventually(lambda: our_stdio_servers() == 0)  # the MCP server went with the turn
    result = by_type(frames, "tool_result")[0]
    assert result["id"] == call.id and result["name"] == "notes__sleep" and result["is_error"] is True
    assert "stopped" in result["output"]
    assert frames[-1]["status"] == "stopped"

    stored = await stored_messages(session_id)
    assert [(m.role, m.status) for m in stored] == [("user", "complete"), ("assistant", "complete"), ("user", "complete")]
    assert stored[2].content[0]["tool_use_id"] == call.id and stored[2].content[0]["is_error"] is True

    # The next turn sends a history the API accepts: every tool_use answered by a tool_result.
    await start(ws, "Go on", session_id=session_id, agent=None)
    await frames_until(ws, "result")
    await ws.disconnect()
    messages = fake.requests[1].body["messages"]
    assert [m["role"] for m in messages] == ["user", "assistant", "user"]
    assert messages[1]["content"][-1]["type"] == "tool_use"
    assert messages[2]["content"][0] == {
        "type": "tool_result", "tool_use_id": call.id, "is_error": True,
        "content": "The user stopped the turn before this tool finished.",
    }  # fmt: skip
    assert messages[2]["content"][-1] == {"type": "text", "text": "Go on"}


def our_stdio_servers() -> int:
    """Running stdio notes servers of this checkout (the HTTP one of the module fixture aside)."""
    count = 0
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if NOTES_SERVER.encode() in argv and b"--http" not in argv:
            count += 1
    return count


async def eventually(predicate, within: float = 10) -> bool:
    deadline = asyncio.get_running_loop().time() + within
    while not predicate():
        if asyncio.get_running_loop().time() > deadline:
            return False
        await asyncio.sleep(0.1)
    return True


async def test_a_server_shutdown_during_a_tool_call_closes_the_mcp_server_and_answers_the_call(user, agent, fake):
    await sync_to_async(attach)(agent, "notes", stdio_notes())
    call = ToolUse("notes__sleep", {"seconds": 60})
    fake.script(Reply(tool_uses=[call], stop_reason="tool_use"))
    plan = await sync_to_async(runs.turn_begin)(user=user, text="Sleep", agent_slug="helper")
    queue: asyncio.Queue = asyncio.Queue()
    runner = runs.TurnRunner(plan, listeners=[queue])
    task = runner.start()
    while (await asyncio.wait_for(queue.get(), 20))["type"] != "tool_use":
        pass
    assert await eventually(lambda: our_stdio_servers() == 1)
    await asyncio.sleep(0.3)
    task.cancel()  # what the server's shutdown does to running turns
    with pytest.raises(asyncio.CancelledError):
        await asyncio.wait_for(task, 20)
    frames = []
    while not queue.empty():
        frames.append(queue.get_nowait())
    assert [f["type"] for f in frames] == ["tool_result", "error"]
    assert frames[0]["is_error"] is True and frames[1]["code"] == "interrupted"
    assert await eventually(lambda: our_stdio_servers() == 0)  # the MCP server went with the turn
    stored = await stored_messages(plan.session_id)
    assert [(m.role, m.status) for m in stored] == [
        ("user", "complete"), ("assistant", "complete"), ("user", "complete"), ("assistant", "error")
    ]  # fmt: skip
    assert stored[3].error_code == "interrupted"
    history = api_messages(stored)
    assert [m["role"] for m in history] == ["user", "assistant", "user"]  # every tool_use answered


async def test_a_hanging_tool_becomes_an_error_result_the_model_reads(user, agent, fake, settings):
    settings.ASSISTANT_TOOL_TIMEOUT = 1
    await sync_to_async(attach)(agent, "notes", stdio_notes())
    call = ToolUse("notes__sleep", {"seconds": 120})
    fake.script(Reply(tool_uses=[call], stop_reason="tool_use"), Reply(text=["It timed out."]))
    ws = await connect(user)
    await start(ws, "Sleep long")
    frames = await frames_until(ws, "result", "error", timeout=30)
    await ws.disconnect()
    result = by_type(frames, "tool_result")[0]
    assert result["is_error"] is True and "did not finish within 1 s" in result["output"]
    assert frames[-1]["type"] == "result" and frames[-1]["status"] == "complete"
    assert fake.requests[1].body["messages"][-1]["content"][0]["is_error"] is True


async def test_a_failing_tool_is_an_error_result_not_a_dead_turn(user, agent, fake):
    await sync_to_async(attach)(agent, "notes", stdio_notes())
    fake.script(Reply(tool_uses=[ToolUse("notes__fail", {})], stop_reason="tool_use"), Reply(text=["It failed."]))
    ws = await connect(user)
    await start(ws, "Fail")
    frames = await frames_until(ws, "result", "error")
    await ws.disconnect()
    result = by_type(frames, "tool_result")[0]
    assert result["is_error"] is True and "Error executing tool fail" in result["output"]
    assert frames[-1]["status"] == "complete"


async def test_a_server_that_does_not_start_ends_the_turn_with_a_clear_error(user, agent, fake, caplog):
    await sync_to_async(attach)(agent, "broken", {"command": "/nonexistent/mcp-server"})
    fake.script(Reply(text=["never asked"]))
    ws = await connect(user)
    await start(ws, "Hello")
    frames = await frames_until(ws, "result", "error")
    await ws.disconnect()
    error = frames[-1]
    assert error["type"] == "error" and error["code"] == "tool_unavailable"
    assert "broken" in error["message"] and "command not found" in error["message"]
    assert fake.requests == []
    answer = await wait_for_message_status(frames[0]["session_id"], {"error"})
    assert answer.error_code == "tool_unavailable"
    assert any("tool_unavailable" in r.getMessage() or "broken" in r.getMessage() for r in caplog.records)


# --- workspace tools ------------------------------------------------------------------------------


async def test_file_tools_work_in_the_sessions_own_workspace_and_see_uploads(user, agent, fake, settings):
    agent.workspace_tools = AIAgent.WorkspaceTools.FILES
    await agent.asave()
    write = ToolUse("write_file", {"path": "notes.txt", "content": "hello"})
    escape = ToolUse("read_file", {"path": "../../etc/passwd"})
    fake.script(Reply(tool_uses=[write, escape], stop_reason="tool_use"), Reply(text=["ok"]))
    ws = await connect(user)
    await start(ws, "Write a note")
    frames = await frames_until(ws, "result", "error")
    await ws.disconnect()
    session_id = frames[0]["session_id"]
    offered = {tool["name"] for tool in fake.requests[0].body["tools"]}
    assert offered == {"list_directory", "glob", "grep", "read_file", "write_file", "edit_file"}  # no shell
    results = {r["id"]: r for r in by_type(frames, "tool_result")}
    assert results[write.id]["is_error"] is False
    assert results[escape.id]["is_error"] is True and "outside the workspace" in results[escape.id]["output"]
    assert (workspace_path(session_id) / "notes.txt").read_text() == "hello"


async def test_run_shell_in_a_turn_runs_in_the_sandbox_of_the_sessions_workspace(user, agent, fake):
    assert sandbox_available()  # bubblewrap: .ci/run installs it
    agent.workspace_tools = AIAgent.WorkspaceTools.FILES_AND_SHELL
    await agent.asave()
    call = ToolUse("run_shell", {"command": "pwd; echo made > made.txt; cat /proc/1/cmdline | tr '\\0' ' '"})
    fake.script(Reply(tool_uses=[call], stop_reason="tool_use"), Reply(text=["ok"]))
    ws = await connect(user)
    await start(ws, "Run it")
    frames = await frames_until(ws, "result", "error")
    await ws.disconnect()
    assert "run_shell" in {tool["name"] for tool in fake.requests[0].body["tools"]}
    result = by_type(frames, "tool_result")[0]
    assert result["is_error"] is False, result
    assert result["output"].startswith("/workspace\n")
    assert "bwrap" in result["output"] or "prlimit" in result["output"] or "sh" in result["output"]
    assert (workspace_path(frames[0]["session_id"]) / "made.txt").read_text() == "made\n"


# --- the trust rules ------------------------------------------------------------------------------


async def test_a_users_agent_never_gets_workspace_tools_or_a_shell(user, fake, settings):
    """Even when the database says so (stored before the rule, or written around the services)."""
    settings.OUTBOUND_ALLOWED_HOSTS = ["127.0.0.1"]  # the user's own LLM config points at the fake
    config = await sync_to_async(_user_llm_config)(user, fake.base_url)
    mine = await AIAgent.objects.acreate(
        name="Mine", slug="mine", system_prompt_text="Mine.", llm_config=config, owner=user,
        workspace_tools=AIAgent.WorkspaceTools.FILES_AND_SHELL,
    )  # fmt: skip
    fake.script(Reply(text=["Hi."]))
    ws = await connect(user)
    await start(ws, "Hello", agent=mine.slug)
    frames = await frames_until(ws, "result", "error")
    await ws.disconnect()
    assert frames[-1]["type"] == "result", frames[-1]
    assert "tools" not in fake.requests[0].body
    assert not workspace_path(frames[0]["session_id"]).exists()


def _user_llm_config(user, base_url):
    from agents.models import LLMProviderConfig

    return LLMProviderConfig.objects.create(
        name="Mine", provider="anthropic", model="claude-test-1", base_url=base_url, api_key="sk-user-key", owner=user
    )


async def test_a_users_stdio_integration_never_runs(user, agent, fake, tmp_path, settings):
    """A user's stdio server stored around the model's rule: the turn is refused and nothing runs."""
    settings.OUTBOUND_ALLOWED_HOSTS = ["127.0.0.1"]
    marker = tmp_path / "pwned"
    await sync_to_async(attach)(
        agent, "pwn", {"command": "sh", "args": ["-c", f"touch {marker}"]}, owner=user
    )
    fake.script(Reply(text=["Hi."]))
    ws = await connect(user)
    await start(ws, "Hello")
    refused = await ws.receive_json_from(10)
    await ws.disconnect()
    assert refused["type"] == "error" and refused["code"] == "agent_unavailable" and "pwn" in refused["message"]
    assert not marker.exists() and fake.requests == []


def test_users_stdio_servers_are_left_out_of_the_assembled_tools(user, agent, tmp_path):
    """The assembly itself never hands a user's stdio server on, whoever asks (CLI or turn)."""
    from assistant.tools.toolset import integration_specs

    attach(agent, "pwn", {"command": "sh", "args": ["-c", "true"]}, owner=user)
    attach(agent, "notes", stdio_notes())
    assert [(s.name, s.transport) for s in integration_specs(agent)] == [("notes", "stdio")]


def test_history_after_a_stop_during_tools_is_valid_for_the_api():
    """The stored shape a stop leaves (answer with tool_use, complete results) passes through."""

    class M:
        def __init__(self, role, status, content):
            self.role, self.status, self.content = role, status, content

    history = api_messages([
        M("user", "complete", [{"type": "text", "text": "go"}]),
        M("assistant", "complete", [{"type": "tool_use", "id": "t1", "name": "x", "input": {}}]),
        M("user", "complete", [{"type": "tool_result", "tool_use_id": "t1", "content": "stopped", "is_error": True}]),
        M("user", "complete", [{"type": "text", "text": "again"}]),
    ])  # fmt: skip
    assert [m["role"] for m in history] == ["user", "assistant", "user"]
    assert [b["type"] for b in history[2]["content"]] == ["tool_result", "text"]


def test_history_after_a_process_died_during_tools_leaves_the_unanswered_call_out():
    """The results message of a turn whose process died is closed as `error` with no content: the
    answer's tool_use then has no result, and is left out of the next request."""

    class M:
        def __init__(self, role, status, content):
            self.role, self.status, self.content = role, status, content

    history = api_messages([
        M("user", "complete", [{"type": "text", "text": "go"}]),
        M("assistant", "complete", [{"type": "text", "text": "Let me look."},
                                    {"type": "tool_use", "id": "t1", "name": "x", "input": {}}]),
        M("user", "error", []),
        M("user", "complete", [{"type": "text", "text": "again"}]),
    ])  # fmt: skip
    assert history == [
        {"role": "user", "content": [{"type": "text", "text": "go"}]},
        {"role": "assistant", "content": [{"type": "text", "text": "Let me look."}]},
        {"role": "user", "content": [{"type": "text", "text": "again"}]},
    ]
