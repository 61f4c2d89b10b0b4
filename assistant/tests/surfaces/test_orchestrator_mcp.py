"""MCP servers for the orchestrator: configuration, real stdio and HTTP servers, clear failures."""

from __future__ import annotations

import json
import logging
import re
import sys
from pathlib import Path

import pytest

from assistant.engine import ToolCall
from assistant.tests.mcp_servers import NOTES_SERVER, notes_over_http
from assistant.tools.mcp import (
    McpConfigError,
    McpServers,
    McpStartError,
    load_mcp_config,
    namespaced,
    parse_mcp_config,
)

SECRET = "notes-secret-0123456789"


def stdio_notes(**extra) -> dict:
    return {"command": sys.executable, "args": [NOTES_SERVER], "env": {"NOTES_TOKEN": SECRET}, **extra}


@pytest.fixture(scope="module", params=["http", "sse"])
def remote_notes(request):
    """The notes server over streamable HTTP or SSE on 127.0.0.1, requiring a bearer token."""
    with notes_over_http(SECRET, *(["--sse"] if request.param == "sse" else [])) as url:
        yield request.param, url


# --- configuration ----------------------------------------------------------------------------


def test_the_mcpservers_wrapper_and_the_bare_mapping_both_parse():
    bare = {
        "notes": stdio_notes(),
        "remote": {"type": "http", "url": "https://mcp.example.com/mcp", "headers": {"Authorization": "Bearer x"}},
    }
    for data in (bare, {"mcpServers": bare}):
        specs = parse_mcp_config(data)
        assert [(s.name, s.transport) for s in specs] == [("notes", "stdio"), ("remote", "http")]
        assert specs[0].env == {"NOTES_TOKEN": SECRET} and specs[1].headers == {"Authorization": "Bearer x"}


def test_describe_never_shows_env_headers_or_url_credentials():
    stdio, remote = parse_mcp_config(
        {
            "a": stdio_notes(),
            "b": {"type": "sse", "url": "https://user:pw@mcp.example.com/sse?token=abc", "headers": {"X-Key": SECRET}},
        }
    )
    assert SECRET not in stdio.describe() and stdio.describe().endswith("notes_server.py")
    assert remote.describe() == "sse https://mcp.example.com/sse"


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("{not json", "is not valid JSON"),
        ("[]", "expected an object mapping server names"),
        ('{"x": {"args": []}}', "needs a command (stdio) or a url"),
        ('{"x": {"type": "websocket", "url": "ws://a"}}', "type must be stdio, sse or http"),
        ('{"x": {"type": "http", "url": "file:///etc"}}', "needs an http(s) url"),
        ('{"x": {"command": "srv", "args": "--flag"}}', "args must be a list of strings"),
        ('{"x": {"command": "srv", "env": {"A": ["b"]}}}', "env must be an object of strings"),
        (
            '{"x": {"command": "srv", "args": ["--token", "abcdefgh123"], "env": {"TOKEN": "abcdefgh123"}}}',
            "pass secrets through env only",
        ),
    ],
)
def test_a_malformed_config_file_is_an_error_that_says_why(tmp_path, content, message):
    path = tmp_path / "mcp.json"
    path.write_text(content)
    with pytest.raises(McpConfigError, match=re.escape(message)):
        load_mcp_config(path)


def test_a_missing_config_file_is_an_error_not_an_empty_list(tmp_path):
    with pytest.raises(McpConfigError, match="MCP config file not found"):
        load_mcp_config(tmp_path / "nope.json")


def test_tool_names_are_namespaced_and_made_to_fit_the_api():
    assert namespaced("notes", "add", set()) == "notes__add"
    assert namespaced("my.server", "do it", set()) == "my_server__do_it"
    long = namespaced("s" * 40, "t" * 40, set())
    assert len(long) == 64 and long.startswith("s" * 40)
    assert namespaced("a.b", "c", {"a_b__c"}) != "a_b__c"


# --- real servers -----------------------------------------------------------------------------


def tool_names(servers: McpServers) -> list[str]:
    return [d["name"] for d in servers.definitions()]


async def test_a_stdio_server_is_started_its_tools_offered_namespaced_and_called(tmp_path, caplog):
    caplog.set_level(logging.DEBUG)
    async with McpServers(parse_mcp_config({"notes": stdio_notes()}), cwd=tmp_path) as servers:
        assert tool_names(servers) == ["notes__add", "notes__whoami", "notes__write_note", "notes__sleep", "notes__fail"]
        definition = servers.definitions()[0]
        assert definition["description"] == "[notes] Add two numbers."
        assert definition["input_schema"]["required"] == ["a", "b"]
        added = await servers.run(ToolCall("t1", "notes__add", {"a": 2, "b": 40}))
        assert (added.content, added.is_error) == ("42", False)
        who = json.loads((await servers.run(ToolCall("t2", "notes__whoami", {}))).content)
        written = await servers.run(ToolCall("t3", "notes__write_note", {"name": "n.txt", "text": "hi"}))
        failed = await servers.run(ToolCall("t4", "notes__fail", {}))
    assert not written.is_error and (tmp_path / "n.txt").read_text() == "hi"
    assert failed.is_error
    # The secret reached the server through its environment, not its arguments, and no log line.
    assert who["token_length"] == len(SECRET) and SECRET not in " ".join(who["argv"])
    assert Path(who["cwd"]) == tmp_path
    assert "MCP server notes started" in caplog.text and SECRET not in caplog.text


async def test_a_remote_server_gets_its_headers_and_its_tools_are_called(remote_notes):
    transport, url = remote_notes
    config = {"remote": {"type": transport, "url": url, "headers": {"Authorization": f"Bearer {SECRET}"}}}
    async with McpServers(parse_mcp_config(config)) as servers:
        assert "remote__add" in tool_names(servers)
        outcome = await servers.run(ToolCall("t1", "remote__add", {"a": 1, "b": 2}))
    assert (outcome.content, outcome.is_error) == ("3", False)


async def test_a_remote_server_that_refuses_the_headers_fails_to_start_clearly(remote_notes):
    transport, url = remote_notes
    config = {"remote": {"type": transport, "url": url, "headers": {"Authorization": "Bearer wrong"}}}
    with pytest.raises(McpStartError, match="MCP server 'remote' failed to start") as error:
        async with McpServers(parse_mcp_config(config)):
            pass
    assert "wrong" not in str(error.value)


@pytest.mark.parametrize(
    ("definition", "reason"),
    [
        ({"command": "/nonexistent/mcp-server"}, "command not found: /nonexistent/mcp-server"),
        (
            {
                "command": sys.executable,
                "args": ["-c", "import sys; sys.stderr.write('no config here\\n'); sys.exit(2)"],
            },
            "stderr: no config here",
        ),
        ({"type": "http", "url": "http://127.0.0.1:9/mcp"}, "could not connect to http://127.0.0.1:9/mcp"),
    ],
)
async def test_a_server_that_fails_to_start_is_a_clear_error(definition, reason):
    with pytest.raises(McpStartError) as error:
        async with McpServers(parse_mcp_config({"broken": definition}), start_timeout=10):
            pass
    assert str(error.value).startswith("MCP server 'broken' failed to start: ") and reason in str(error.value)


async def test_a_server_that_never_answers_times_out(settings):
    hanging = {"command": sys.executable, "args": ["-c", "import time; time.sleep(60)"]}
    with pytest.raises(McpStartError, match="no answer to the MCP handshake in time"):
        async with McpServers(parse_mcp_config({"slow": hanging}), start_timeout=0.5):
            pass
