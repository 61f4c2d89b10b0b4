"""Built-in tool calls run on a pool of their own, bounded (issue 33, item 2): never on asyncio's default
executor, which the rest of the process shares; a call that can't get a thread within its timeout, or runs
past it, is an error result at once, and its work is dropped or told to stop."""

from __future__ import annotations

import asyncio
import random
import threading
import time

import pytest

from assistant.engine import ToolCall
from assistant.tools.mcp import McpServers
from assistant.tools.threads import tool_executor
from assistant.tools.toolset import AgentTools
from assistant.tools.workspace import BuiltinTools, Workspace


def workspace(tmp_path, name: str) -> Workspace:
    (tmp_path / name).mkdir()
    (tmp_path / name / "notes.txt").write_text("hello\n")
    return Workspace(tmp_path / name)


def turn_tools(root: Workspace, *, timeout: float) -> AgentTools:
    """The tools of one server-side turn, as open_agent_tools builds them (no MCP servers)."""
    builtin = BuiltinTools(root, shell_timeout=5, output_limit=5000, shell_env={})
    return AgentTools(builtin, McpServers([], cwd=None, start_timeout=5, call_timeout=5), None, timeout=timeout)


async def watched(awaitable) -> tuple[object, float, float]:
    """(result, seconds taken, longest the event loop went without running a ready task)."""
    gaps = [0.0]

    async def ticker():
        last = time.monotonic()
        while True:
            await asyncio.sleep(0.02)
            gaps.append(time.monotonic() - last - 0.02)
            last = time.monotonic()

    watching = asyncio.create_task(ticker())
    started = time.monotonic()
    try:
        result = await awaitable
    finally:
        watching.cancel()
    return result, time.monotonic() - started, max(gaps)


async def test_tool_calls_run_while_the_default_executor_is_full(tmp_path):
    """What starved every turn in the issue: the default executor's threads all taken."""
    loop = asyncio.get_running_loop()
    released = threading.Event()
    blockers = [loop.run_in_executor(None, released.wait) for _ in range(40)]  # more than it has threads
    try:
        tools = turn_tools(workspace(tmp_path, "a"), timeout=5)
        outcome = await asyncio.wait_for(tools.run(ToolCall("t1", "read_file", {"path": "notes.txt"})), 3)
        assert outcome.is_error is False and "hello" in outcome.content
    finally:
        released.set()
        await asyncio.gather(*blockers)


async def test_a_call_that_cant_get_a_thread_in_time_is_an_error_at_its_timeout_and_never_runs(tmp_path, settings):
    settings.ASSISTANT_TOOL_THREADS = 1
    busy = tool_executor().submit(time.sleep, 2.5)  # another turn's call holds the only thread
    root = workspace(tmp_path, "b")
    tools = turn_tools(root, timeout=1)
    outcome, seconds, longest_stall = await watched(
        tools.run(ToolCall("t1", "write_file", {"path": "late.txt", "content": "x"}))
    )
    assert (
        outcome.is_error is True
        and outcome.content == "The tool write_file did not finish within 1 s and was cancelled."
    )
    assert 0.9 < seconds < 2.5 and longest_stall < 0.5  # waited in the queue, not on the event loop
    await asyncio.wrap_future(busy)
    await asyncio.sleep(0.2)
    assert not (root.root / "late.txt").exists()  # dropped from the queue, not run late
    again = await asyncio.wait_for(tools.run(ToolCall("t2", "write_file", {"path": "late.txt", "content": "x"})), 2)
    assert again.is_error is False and (root.root / "late.txt").read_text() == "x"


@pytest.fixture
def slow_to_search(tmp_path) -> Workspace:
    """A file that takes RE2 about 30 s to search with the pattern below (its DFA gives up; ~1 s per chunk)."""
    root = workspace(tmp_path, "slow")
    letters = random.Random(33).randbytes(1000 * 1000).translate(bytes(b"ab"[n % 2] for n in range(256)))
    (root.root / "ab.txt").write_bytes(b"\n".join(letters[n : n + 1000] for n in range(0, len(letters), 1000)) + b"\n")
    return root


SLOW_PATTERN = "(a|b|aa|bb|ab|ba){1,1000}c"


async def test_a_call_past_its_timeout_is_answered_at_once_and_its_thread_soon_free(tmp_path, settings, slow_to_search):
    settings.ASSISTANT_TOOL_THREADS = 1
    tools = turn_tools(slow_to_search, timeout=1)
    outcome, seconds, longest_stall = await watched(tools.run(ToolCall("t1", "grep", {"pattern": SLOW_PATTERN})))
    assert outcome.is_error is True and "did not finish within 1 s" in outcome.content
    assert seconds < 2.5 and longest_stall < 0.5
    # The abandoned search stops at its next check (a chunk: about a second at most), not after its 20 s.
    other = turn_tools(workspace(tmp_path, "other"), timeout=10)
    started = time.monotonic()
    follow_up = await other.run(ToolCall("t2", "read_file", {"path": "notes.txt"}))
    assert follow_up.is_error is False and time.monotonic() - started < 2.5


async def test_a_stopped_turn_frees_its_tool_thread_too(tmp_path, settings, slow_to_search):
    settings.ASSISTANT_TOOL_THREADS = 1
    tools = turn_tools(slow_to_search, timeout=60)
    running = asyncio.create_task(tools.run(ToolCall("t1", "grep", {"pattern": SLOW_PATTERN})))
    await asyncio.sleep(0.5)
    running.cancel()  # what a stop does to the turn's tool calls
    with pytest.raises(asyncio.CancelledError):
        await running
    other = turn_tools(workspace(tmp_path, "other"), timeout=10)
    started = time.monotonic()
    follow_up = await other.run(ToolCall("t2", "read_file", {"path": "notes.txt"}))
    assert follow_up.is_error is False and time.monotonic() - started < 2.5
