"""The pool of warm MCP connections (assistant/tools/mcp_pool.py) as turns use it through
open_agent_tools, with real stdio notes servers: what makes two connections different, one turn at a
time per connection, the cap, the idle timeout, closing."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from assistant.engine import ToolCall
from assistant.tests.runs.test_turn_agent_tools import eventually, our_stdio_servers
from assistant.tools.mcp import parse_mcp_config
from assistant.tools.mcp_pool import connection_key, mcp_pool, mcp_pool_close
from assistant.tools.toolset import ToolSetup, open_agent_tools

NOTES_SERVER = str(Path(__file__).parents[1] / "mcp_servers" / "notes_server.py")


def notes(token: str = "", name: str = "notes") -> ToolSetup:
    definition = {"command": sys.executable, "args": [NOTES_SERVER], "env": {"NOTES_TOKEN": token} if token else {}}
    return ToolSetup(mcp_specs=tuple(parse_mcp_config({name: definition})))


async def pid_of(tools, server: str = "notes") -> int:
    outcome = await tools.run(ToolCall("c1", f"{server}__whoami", {}))
    assert not outcome.is_error, outcome.content
    return json.loads(outcome.content)["pid"]


async def turn_pid(setup: ToolSetup) -> int:
    async with open_agent_tools(setup) as tools:
        return await pid_of(tools)


# --- what a connection is kept under ----------------------------------------------------------------


def spec_of(definition: dict, *, name: str = "notes", guard_egress: bool = False):
    return parse_mcp_config({name: definition}, guard_egress=guard_egress)[0]


def test_credentials_working_directory_and_egress_guard_make_different_keys(tmp_path):
    stdio = {"command": "notes-server", "args": ["--stdio"], "env": {"TOKEN": "alice-secret"}}
    key = connection_key(spec_of(stdio), tmp_path)
    assert connection_key(spec_of(stdio, name="renamed"), tmp_path) == key  # the name only names its tools
    assert connection_key(spec_of({**stdio, "env": {"TOKEN": "bob-secret"}}), tmp_path) != key
    assert connection_key(spec_of({**stdio, "args": ["--other"]}), tmp_path) != key
    assert connection_key(spec_of(stdio), tmp_path / "another-session") != key
    assert connection_key(spec_of(stdio), None) != key

    http = {"type": "http", "url": "https://mcp.example.com/mcp", "headers": {"Authorization": "Bearer alice"}}
    key = connection_key(spec_of(http), None)
    assert connection_key(spec_of(http), tmp_path) == key  # a remote server has no working directory
    assert connection_key(spec_of({**http, "headers": {"Authorization": "Bearer bob"}}), None) != key
    assert connection_key(spec_of(http, guard_egress=True), None) != key


# --- one turn at a time, the cap, the idle timeout ---------------------------------------------------


async def test_two_turns_at_once_with_the_same_server_get_a_process_each_and_both_stay_warm():
    setup = notes()
    async with open_agent_tools(setup) as first, open_agent_tools(setup) as second:
        pids = {await pid_of(first), await pid_of(second)}
    assert len(pids) == 2 and our_stdio_servers() == 2 and len(mcp_pool()) == 2
    assert await turn_pid(setup) in pids


async def test_the_cap_closes_the_least_recently_used_first(settings):
    settings.ASSISTANT_MCP_POOL_SIZE = 2
    a, b, c = notes("token-a"), notes("token-b"), notes("token-c")
    pid_a, pid_b = await turn_pid(a), await turn_pid(b)
    assert await turn_pid(a) == pid_a  # a is now the most recently used
    pid_c = await turn_pid(c)  # past the cap: b goes
    assert await eventually(lambda: our_stdio_servers() == 2)
    assert await turn_pid(a) == pid_a and await turn_pid(c) == pid_c
    assert await turn_pid(b) not in {pid_a, pid_b, pid_c}


async def test_a_turn_needing_more_than_the_cap_gets_them_all_and_the_extra_is_closed_after(settings):
    settings.ASSISTANT_MCP_POOL_SIZE = 1
    both = ToolSetup(mcp_specs=(*notes("token-a", "first").mcp_specs, *notes("token-b", "second").mcp_specs))
    async with open_agent_tools(both) as tools:
        assert await pid_of(tools, "first") != await pid_of(tools, "second")
        assert our_stdio_servers() == 2
    assert len(mcp_pool()) == 1
    assert await eventually(lambda: our_stdio_servers() == 1)


async def test_a_pool_of_size_zero_keeps_nothing(settings):
    settings.ASSISTANT_MCP_POOL_SIZE = 0
    first = await turn_pid(notes())
    assert len(mcp_pool()) == 0 and await eventually(lambda: our_stdio_servers() == 0)
    assert await turn_pid(notes()) != first


async def test_a_connection_idle_past_the_timeout_is_closed(settings):
    settings.ASSISTANT_MCP_IDLE_TIMEOUT = 0.3
    await turn_pid(notes())
    assert our_stdio_servers() == 1
    assert await eventually(lambda: our_stdio_servers() == 0 and len(mcp_pool()) == 0, within=5)


async def test_closing_the_pool_closes_the_connections_of_running_turns_too():
    async with open_agent_tools(notes()) as tools:
        await pid_of(tools)
        await mcp_pool_close()
        assert our_stdio_servers() == 0
        outcome = await tools.run(ToolCall("c2", "notes__whoami", {}))
        assert outcome.is_error and "not running" in outcome.content
