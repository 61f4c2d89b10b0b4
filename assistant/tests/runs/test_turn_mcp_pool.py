"""Warm MCP connections across websocket turns (assistant/tools/mcp_pool.py), with real stdio notes
servers: reused by the next turn, never across credentials, replaced when their server died, a new one
when staff change the integration, `tool_unavailable` when a server can't be started again."""

from __future__ import annotations

import json
import os
import signal
import sys

import pytest
from asgiref.sync import sync_to_async

from agents.models import AIAgent, Integration
from assistant import runs
from assistant.tests.conftest import connect, frames_until
from assistant.tests.runs.test_turn_agent_tools import (
    NOTES_SERVER,
    SECRET,
    attach,
    by_type,
    eventually,
    our_stdio_servers,
    start,
    stdio_notes,
)
from assistant.tools.mcp_pool import mcp_pool
from config.testing.fake_anthropic import Reply, ToolUse

pytestmark = pytest.mark.django_db(transaction=True)


async def turn(user, fake, *, agent: str = "helper", call: ToolUse | None = None) -> list[dict]:
    """One websocket turn in which the model calls `call` (whoami by default), then answers; its frames.
    Returns once the turn has given its connections back."""
    call = call or ToolUse("notes__whoami", {})
    fake.script(Reply(tool_uses=[call], stop_reason="tool_use"), Reply(text=["Done."]))
    ws = await connect(user)
    await start(ws, "Use the notes tool", agent=agent)
    frames = await frames_until(ws, "result", "error", timeout=30)
    await ws.disconnect()
    assert await eventually(lambda: runs.running_turn(frames[0]["session_id"]) is None)
    return frames


async def whoami(user, fake, *, agent: str = "helper") -> dict:
    """The notes server's whoami, as the model of one turn read it (argv, token length, cwd, pid)."""
    frames = await turn(user, fake, agent=agent)
    result = by_type(frames, "tool_result")[0]
    assert result["is_error"] is False and frames[-1]["type"] == "result", frames
    return json.loads(result["output"])


def alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as handle:
            return NOTES_SERVER.encode() in handle.read()  # a reaped pid, or a zombie's: empty
    except OSError:
        return False


def second_agent(agent: AIAgent, *, credentials: dict) -> AIAgent:
    """Another organization agent with its own `notes` integration (another provider: one active
    organization integration per provider), the same server with other credentials."""
    other = AIAgent.objects.create(
        name="Other", slug="other", system_prompt_text="Another agent.", llm_config=agent.llm_config, is_active=True
    )
    integration = Integration.objects.create(
        name="notes", provider="github", mcp_server=stdio_notes(), credentials=credentials
    )
    other.integrations.add(integration)
    return other


async def test_the_next_turn_reuses_the_warm_server_without_starting_another(user, agent, fake):
    await sync_to_async(attach)(agent, "notes", stdio_notes(), credentials={"NOTES_TOKEN": SECRET})
    first = await whoami(user, fake)
    assert our_stdio_servers() == 1  # kept after the turn
    second = await whoami(user, fake)
    assert second["pid"] == first["pid"] and second["token_length"] == len(SECRET)
    assert our_stdio_servers() == 1 and len(mcp_pool()) == 1


async def test_servers_with_other_credentials_never_share_a_process(user, agent, fake):
    await sync_to_async(attach)(agent, "notes", stdio_notes(), credentials={"NOTES_TOKEN": SECRET})
    await sync_to_async(second_agent)(agent, credentials={"NOTES_TOKEN": "another-secret"})
    mine = await whoami(user, fake)
    theirs = await whoami(user, fake, agent="other")
    assert mine["pid"] != theirs["pid"]
    assert (mine["token_length"], theirs["token_length"]) == (len(SECRET), len("another-secret"))
    # Each agent's next turn gets its own process back.
    assert (await whoami(user, fake))["pid"] == mine["pid"]
    assert (await whoami(user, fake, agent="other"))["pid"] == theirs["pid"]
    assert our_stdio_servers() == 2


async def test_changed_credentials_get_a_new_server_and_the_old_one_is_never_used_again(user, agent, fake, settings):
    integration = await sync_to_async(attach)(agent, "notes", stdio_notes(), credentials={"NOTES_TOKEN": SECRET})
    before = await whoami(user, fake)
    integration.credentials = {"NOTES_TOKEN": "rotated-token"}
    await integration.asave()  # staff rotate the token: the catalog moves, the turn's definition changes
    after = await whoami(user, fake)
    assert after["pid"] != before["pid"] and after["token_length"] == len("rotated-token")
    assert (await whoami(user, fake))["pid"] == after["pid"]
    # The old one only waits for its idle timeout.
    settings.ASSISTANT_MCP_IDLE_TIMEOUT = 0.2
    await whoami(user, fake)  # gives a connection back: the idle sweep starts with the new timeout
    assert await eventually(lambda: not alive(before["pid"]) and not alive(after["pid"]))


async def test_a_server_killed_between_turns_is_noticed_and_the_next_turn_starts_a_new_one(user, agent, fake):
    await sync_to_async(attach)(agent, "notes", stdio_notes())
    first = await whoami(user, fake)
    os.kill(first["pid"], signal.SIGKILL)
    assert await eventually(lambda: len(mcp_pool()) == 0)  # its connection's task ended: not kept
    second = await whoami(user, fake)
    assert second["pid"] != first["pid"] and alive(second["pid"])


async def test_a_server_that_dies_during_a_call_is_an_error_result_and_is_not_kept(user, agent, fake):
    await sync_to_async(attach)(agent, "notes", stdio_notes())
    first = await whoami(user, fake)
    sleep = ToolUse("notes__sleep", {"seconds": 30})
    fake.script(Reply(tool_uses=[sleep], stop_reason="tool_use"), Reply(text=["Ok."]))
    ws = await connect(user)
    await start(ws, "Sleep")
    await frames_until(ws, "tool_use")
    await eventually(lambda: False, within=0.3)  # the call reaches the server
    os.kill(first["pid"], signal.SIGKILL)
    frames = await frames_until(ws, "result", "error", timeout=30)
    await ws.disconnect()
    result = by_type(frames, "tool_result")[0]
    assert result["is_error"] is True and "MCP server 'notes' failed" in result["output"], result
    assert frames[-1]["type"] == "result" and frames[-1]["status"] == "complete"
    assert await eventually(lambda: len(mcp_pool()) == 0)
    assert (await whoami(user, fake))["pid"] != first["pid"]


async def test_a_server_that_cannot_be_started_again_ends_the_turn_with_tool_unavailable(
    user, agent, fake, tmp_path
):
    broken = tmp_path / "broken"
    # The notes server until `broken` exists; then a command that fails at once, saying why.
    script = (
        f'test -e {broken} && {{ echo "notes: out of licences" >&2; exit 1; }}; exec {sys.executable} {NOTES_SERVER}'
    )
    await sync_to_async(attach)(agent, "notes", {"command": "sh", "args": ["-c", script]})
    first = await whoami(user, fake)
    broken.touch()
    os.kill(first["pid"], signal.SIGKILL)
    assert await eventually(lambda: len(mcp_pool()) == 0)
    fake.script(Reply(text=["never asked"]))
    ws = await connect(user)
    await start(ws, "Again")
    frames = await frames_until(ws, "result", "error", timeout=30)
    await ws.disconnect()
    error = frames[-1]
    assert error["type"] == "error" and error["code"] == "tool_unavailable", error
    assert "MCP server 'notes' failed to start" in error["message"] and "out of licences" in error["message"]
    assert len(fake.requests) == 2  # the first turn's two calls: the model was not asked again


async def test_a_stopped_tool_call_closes_its_server_rather_than_hand_it_on(user, agent, fake):
    """The server may still be working on the abandoned call: the next turn gets a fresh one."""
    await sync_to_async(attach)(agent, "notes", stdio_notes())
    first = await whoami(user, fake)
    fake.script(Reply(tool_uses=[ToolUse("notes__sleep", {"seconds": 60})], stop_reason="tool_use"))
    ws = await connect(user)
    await start(ws, "Sleep")
    frames = await frames_until(ws, "tool_use")
    await eventually(lambda: False, within=0.3)
    await ws.send_json_to({"type": "stop", "session_id": frames[0]["session_id"]})
    frames = await frames_until(ws, "result")
    await ws.disconnect()
    assert frames[-1]["status"] == "stopped"
    assert await eventually(lambda: not alive(first["pid"]))
    assert (await whoami(user, fake))["pid"] != first["pid"]


# --- a serving process ---------------------------------------------------------------------------

_SEED_SERVED = """
from accounts.models import User
from accounts.services import token_pair_issue
from agents.models import AIAgent, Integration, LLMProviderConfig
config = LLMProviderConfig.objects.create(name="Fake", provider="anthropic", model="claude-test-1",
                                          base_url={fake!r}, api_key="sk-test-key", max_tokens=512)
agent = AIAgent.objects.create(name="Helper", slug="helper", system_prompt_text="Test.", llm_config=config)
agent.integrations.add(Integration.objects.create(name="notes", provider="custom", mcp_server={server!r}))
user = User.objects.create_user(email="served@example.com", password="a served passphrase", name="Served")
print("TOKEN", token_pair_issue(user=user)["access_token"])
"""


def processes_with(marker: str) -> list[int]:
    pids = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            if marker.encode() in open(f"/proc/{pid}/cmdline", "rb").read().split(b"\0"):
                pids.append(int(pid))
        except OSError:
            continue
    return pids


def test_a_serving_process_stops_its_warm_mcp_servers_when_it_stops(tmp_path, fake):
    """`manage.py run`, SIGTERM: the worker closes its pool before it exits. The server here outlives
    its stdin (a wrapper that waits after the notes server ends), as some do: only an explicit close
    (stdin, then its process group stopped) ends it; an exiting worker alone would orphan it."""
    import asyncio
    import subprocess
    import uuid

    import websockets
    from django.conf import settings as django_settings

    from config.testing.processes import database_url_for_children, running_server

    marker = f"mcp-served-{uuid.uuid4().hex[:8]}"
    wrapper = f"import subprocess, sys, time; subprocess.run([sys.executable, {NOTES_SERVER!r}]); time.sleep(600)"
    server = {"command": sys.executable, "args": ["-c", wrapper, marker]}
    env = {"DATABASE_URL": database_url_for_children(tmp_path), "ANTHROPIC_MAX_RETRIES": "0"}
    seeded = subprocess.run(
        [sys.executable, "manage.py", "shell", "-c", _SEED_SERVED.format(fake=fake.base_url, server=server)],
        cwd=django_settings.BASE_DIR, env={**os.environ, **env}, capture_output=True, text=True, timeout=120,
        check=True,
    )  # fmt: skip
    token = next(line.split()[1] for line in seeded.stdout.splitlines() if line.startswith("TOKEN "))
    fake.script(Reply(tool_uses=[ToolUse("notes__add", {"a": 1, "b": 2})], stop_reason="tool_use"), Reply(text=["3"]))

    async def one_turn(base: str) -> list[dict]:
        url = base.replace("http://", "ws://") + "/ws/assistant/"
        async with websockets.connect(url, subprotocols=["jwt", token], origin=base, open_timeout=10) as socket:
            await socket.send(json.dumps({"type": "start", "agent": "helper", "message": "1+2?"}))
            frames = []
            while not frames or frames[-1]["type"] not in {"result", "error"}:
                frames.append(json.loads(await asyncio.wait_for(socket.recv(), 30)))
            return frames

    with running_server(env) as base:
        frames = asyncio.run(one_turn(base))
        assert frames[-1]["type"] == "result" and by_type(frames, "tool_result")[0]["output"] == "3", frames
        assert len(processes_with(marker)) == 1  # kept warm after the turn
    # running_server's exit: SIGTERM to `manage.py run`, which stops its worker and waits for it.
    assert processes_with(marker) == []
