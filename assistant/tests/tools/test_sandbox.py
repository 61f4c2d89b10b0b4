"""run_shell in server-side turns: escapes from the bubblewrap sandbox are refused, limits hold.

Each test runs the tool as a turn does (BuiltinTools with the sandbox's limits) on a real bwrap."""

from __future__ import annotations

import asyncio
import logging
import os
import time
import uuid
from pathlib import Path

import pytest
from django.conf import settings as django_settings

from assistant.tools import sandbox
from assistant.engine import ToolCall
from assistant.tools.sandbox import SandboxLimits
from assistant.tools.workspace import FILE_TOOLS, BuiltinTools, Workspace
from config.testing.listener import recording_listener

LIMITS = SandboxLimits(timeout=10, memory_bytes=256 * 1024 * 1024, processes=48, file_bytes=1024 * 1024,
                       output_chars=4000)  # fmt: skip


@pytest.fixture
def workspace(_workspaces_dir) -> Path:
    root = _workspaces_dir / "1"
    root.mkdir()
    return root


def shell(workspace: Path, limits: SandboxLimits = LIMITS) -> BuiltinTools:
    assert sandbox.sandbox_available(), sandbox.sandbox_unavailable_reason()  # .ci/run installs bubblewrap
    return BuiltinTools(
        Workspace(workspace), shell_timeout=int(limits.timeout), output_limit=30000, shell_env={},
        names=FILE_TOOLS | {"run_shell"}, sandbox=limits,
    )  # fmt: skip


async def run(tools: BuiltinTools, command: str):
    return await tools.run(ToolCall("call-1", "run_shell", {"command": command}))


def sandbox_processes() -> int:
    """Live processes of the sandbox's user left on the machine (as root: it runs commands as SANDBOX_UID,
    which owns nothing else; otherwise: bubblewrap processes of this test's workspaces)."""
    count = 0
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            if int(pid) == os.getpid():
                continue
            # A zombie has already exited; one whose parent died is reparented to PID 1, which reaps
            # it when it gets to it (this machine's init is slow at that under load).
            if Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z":
                continue
            if os.geteuid() == 0:
                count += os.stat(f"/proc/{pid}").st_uid == django_settings.SANDBOX_UID
            else:
                count += str(django_settings.WORKSPACES_DIR) in Path(f"/proc/{pid}/cmdline").read_text(errors="replace")
        except (FileNotFoundError, ProcessLookupError, PermissionError):
            pass
    return count


def _sandbox_ps() -> str:
    import subprocess

    lines = subprocess.run(["ps", "-eo", "pid,ppid,uid,stat,args"], capture_output=True, text=True).stdout.splitlines()
    return "\n".join(line for line in lines if str(django_settings.SANDBOX_UID) in line)[-3000:]


async def no_sandbox_processes_left(within: float = 5) -> bool:
    """True once no sandbox process is left (killed processes take a moment to go)."""
    deadline = time.monotonic() + within
    while sandbox_processes():
        if time.monotonic() > deadline:
            return False
        await asyncio.sleep(0.1)
    return True


async def test_a_command_works_in_the_workspace_and_its_files_stay(workspace):
    outcome = await run(shell(workspace), "pwd; echo hello > greeting.txt; cat greeting.txt")
    assert outcome.is_error is False and outcome.content == "/workspace\nhello\n"
    assert (workspace / "greeting.txt").read_text() == "hello\n"


async def test_writing_outside_the_workspace_is_refused_or_stays_inside_the_sandbox(workspace):
    marker = f"escape-{uuid.uuid4().hex}"
    repo = Path(django_settings.BASE_DIR)
    targets = [f"/tmp/{marker}", f"/etc/{marker}", f"/usr/{marker}", f"{repo}/{marker}", f"../{marker}",
               f"/workspace/../{marker}", f"/{marker}", f"/root/{marker}", f"{workspace}/{marker}"]  # fmt: skip
    command = "; ".join(f"echo x > {t} 2>/dev/null && echo wrote {t}" for t in targets)
    command += f"; ln -s / root-link; echo x > root-link/tmp/{marker}-via-link 2>/dev/null; true"
    outcome = await run(shell(workspace), command)
    # Writes outside the workspace that "worked" went to the sandbox's own throwaway /tmp or nowhere.
    for target in targets:
        assert not Path(target.replace("../", str(workspace.parent) + "/")).exists(), target
    assert not Path(f"/tmp/{marker}").exists() and not Path(f"/tmp/{marker}-via-link").exists()
    assert not (workspace.parent / marker).exists() and not (repo / marker).exists()
    assert not list(workspace.parent.glob(f"*{marker}*"))
    # The system is read-only; what else "worked" was the sandbox's own throwaway root or /tmp.
    assert "wrote /usr" not in outcome.content and f"wrote {repo}" not in outcome.content, outcome.content


async def test_the_server_is_invisible_no_environment_no_other_processes(workspace, monkeypatch):
    monkeypatch.setenv("SECRET_FOR_SANDBOX_TEST", "top-secret")
    outcome = await run(shell(workspace), "env; ls /proc | grep -c '^[0-9]'; ls /home /root 2>&1; hostname")
    assert "top-secret" not in outcome.content and "SECRET_KEY" not in outcome.content
    lines = outcome.content.splitlines()
    assert "sandbox" in lines
    process_count = next(int(line) for line in lines if line.isdigit())
    assert process_count <= 5  # bubblewrap's init, prlimit/sh, ls, grep: not the machine's processes


async def test_no_network_connection_reaches_a_listener_on_the_host(workspace):
    with recording_listener() as listener:
        command = (
            "python3 -c \"import socket; s=socket.socket(); s.settimeout(3); "
            f"s.connect(('127.0.0.1', {listener.port})); print('connected')\"; "
            f"python3 -c \"import socket; print(socket.getaddrinfo('localhost', {listener.port}))\" 2>&1 | tail -1"
        )
        outcome = await run(shell(workspace), command)
        await asyncio.sleep(0.2)
        assert listener.accepted == 0
    assert "connected" not in outcome.content.splitlines()


async def test_a_fork_bomb_is_bounded_and_the_turn_goes_on(workspace):
    started = time.monotonic()
    outcome = await run(shell(workspace), "f(){ f | f & }; f; sleep 2; echo survived")
    assert time.monotonic() - started < LIMITS.timeout + 5
    assert "Cannot fork" in outcome.content or "Resource temporarily unavailable" in outcome.content
    assert await no_sandbox_processes_left(), _sandbox_ps()  # nothing left behind
    follow_up = await run(shell(workspace), "echo still fine")
    assert follow_up.content == "still fine\n"


async def test_a_memory_hog_is_refused(workspace):
    outcome = await run(shell(workspace), "python3 -c 'x = bytearray(2 * 1024**3); print(\"allocated\")'")
    assert outcome.is_error is True and "MemoryError" in outcome.content and "allocated" not in outcome.content


async def test_runaway_output_is_cut_and_the_command_killed(workspace):
    started = time.monotonic()
    outcome = await run(shell(workspace), "yes sandbox")
    assert time.monotonic() - started < 5  # killed at the limit, not at the timeout
    assert outcome.is_error is True and "the command was killed" in outcome.content
    assert len(outcome.content) < LIMITS.output_chars + 200


async def test_a_huge_file_is_cut_at_the_file_size_limit(workspace):
    await run(shell(workspace), "head -c 10000000 /dev/zero > big.bin; ls -l big.bin")
    assert (workspace / "big.bin").stat().st_size <= LIMITS.file_bytes


async def test_a_command_past_its_time_is_killed_with_its_children(workspace):
    limits = SandboxLimits(**{**LIMITS.__dict__, "timeout": 2})
    started = time.monotonic()
    outcome = await run(shell(workspace, limits), "sleep 60 & sleep 60 & sleep 60")
    assert time.monotonic() - started < 6
    assert outcome.is_error is True and "timed out after 2 s" in outcome.content
    assert await no_sandbox_processes_left(), _sandbox_ps()


async def test_cancelling_the_tool_kills_the_command(workspace):
    task = asyncio.create_task(run(shell(workspace), "sleep 60"))
    await asyncio.sleep(1)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert await no_sandbox_processes_left(), _sandbox_ps()


def test_without_bubblewrap_the_shell_is_not_offered_and_the_server_says_so_once(settings, caplog, db):
    from agents.models import AIAgent
    from assistant.tools.toolset import workspace_tools_for

    settings.SANDBOX_BWRAP = "/nonexistent/bwrap"
    sandbox.sandbox_unavailable_reason.cache_clear()
    try:
        agent = AIAgent(name="A", slug="a", workspace_tools=AIAgent.WorkspaceTools.FILES_AND_SHELL)
        assert workspace_tools_for(agent) == (True, False)
        with caplog.at_level(logging.WARNING, logger="assistant.tools.sandbox"):
            sandbox.sandbox_check_at_startup()
        warnings = [r.getMessage() for r in caplog.records if r.name == "assistant.tools.sandbox"]
        assert len(warnings) == 1 and "run_shell is not offered" in warnings[0] and "not installed" in warnings[0]
    finally:
        sandbox.sandbox_unavailable_reason.cache_clear()


async def test_nothing_a_command_starts_outlives_it(workspace):
    outcome = await run(shell(workspace), "sleep 60 & sleep 60 & echo started")
    assert outcome.content == "started\n"
    assert await no_sandbox_processes_left(within=3), _sandbox_ps()


async def test_a_command_and_a_file_tool_of_one_turn_never_run_at_once(workspace):
    """A command swapping a directory for a symlink to / while write_file writes under it would race
    the file tool's path check (it runs as the server): the turn's calls run one at a time."""
    tools = shell(workspace)
    (workspace / "d").mkdir()
    swapper = "for i in $(seq 1 200); do rm -rf d; ln -s / d; rm d; mkdir d; done; echo swapped"
    writes = [tools.run(ToolCall(f"w{i}", "write_file", {"path": "d/etc/escape-probe", "content": "x"}))
              for i in range(20)]  # fmt: skip
    outcomes = await asyncio.gather(run(tools, swapper), *writes)
    assert outcomes[0].content.endswith("swapped\n")
    assert not Path("/etc/escape-probe").exists()
