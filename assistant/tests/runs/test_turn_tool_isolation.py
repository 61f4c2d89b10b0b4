"""A tool that misbehaves costs its own turn, nobody else's (issue 33, item 2): one user's turn makes a
named pipe with the sandboxed shell and reads it, again and again, as the issue's attacker did; another
user's turn, with its own tool call, still completes at once. Real websocket turns against the fake model."""

from __future__ import annotations

import os
import time

import pytest

from agents.models import AIAgent
from agents.workspaces import workspace_path
from assistant.tests.conftest import connect, frames_until
from assistant.tools.sandbox import sandbox_available
from config.testing.fake_anthropic import Reply, ToolUse

pytestmark = pytest.mark.django_db(transaction=True)


def release(pipe) -> None:
    """Wake any reader a build that opens pipes blocking left waiting (so a failure doesn't hang the run)."""
    try:
        os.close(os.open(pipe, os.O_WRONLY | os.O_NONBLOCK))
    except OSError:
        pass


def by_type(frames: list[dict], kind: str) -> list[dict]:
    return [f for f in frames if f["type"] == kind]


async def test_one_users_reads_of_named_pipes_dont_hold_up_another_users_turn(user, other_user, agent, fake, settings):
    """As the issue's attacker: in one session after another, `mkfifo p` then `read_file p`. Each read used to
    hold one more thread of asyncio's default executor for good; after six, nobody's turn went on."""
    assert sandbox_available()  # bubblewrap: .ci/run installs it
    settings.ASSISTANT_TOOL_TIMEOUT = 2
    agent.workspace_tools = AIAgent.WorkspaceTools.FILES_AND_SHELL
    await agent.asave()
    rounds = 7  # the default executor has min(32, CPUs + 4) threads: 6 on the 2-CPU machines here
    for _ in range(rounds):
        fake.script(
            Reply(tool_uses=[ToolUse("run_shell", {"command": "mkfifo p"}), ToolUse("read_file", {"path": "p"})],
                  stop_reason="tool_use"),
            Reply(text=["Nothing to read."]),
        )  # fmt: skip
    write = ToolUse("write_file", {"path": "mine.txt", "content": "mine"})
    fake.script(Reply(tool_uses=[write], stop_reason="tool_use"), Reply(text=["Written."]))
    attacker = await connect(user)
    pipes, attacks = [], []
    try:
        for _ in range(rounds):
            await attacker.send_json_to({"type": "start", "message": "Read the pipe", "agent": "helper"})
            frames = await frames_until(attacker, "result", "error", timeout=30)
            pipes.append(workspace_path(frames[0]["session_id"]) / "p")
            attacks.append(frames)

        bystander = await connect(other_user)
        started = time.monotonic()
        await bystander.send_json_to({"type": "start", "message": "Write a file", "agent": "helper"})
        theirs = await frames_until(bystander, "result", "error", timeout=10)
        await bystander.disconnect()
        assert time.monotonic() - started < 3
        assert by_type(theirs, "tool_result")[0]["is_error"] is False, theirs
        assert theirs[-1]["type"] == "result" and theirs[-1]["status"] == "complete"
        assert (workspace_path(theirs[0]["session_id"]) / "mine.txt").read_text() == "mine"
        # The attacker's turns went on too: each read an error it reads, at once.
        for frames in attacks:
            shell, read = by_type(frames, "tool_result")
            assert shell["is_error"] is False
            assert read["output"] == "p is a named pipe (FIFO): the file tools read and write regular files only."
            assert frames[-1]["type"] == "result" and frames[-1]["status"] == "complete"
    finally:
        await attacker.disconnect()
        for pipe in pipes:
            release(pipe)
