"""A user's MCP server url over real sse and streamable-http connections: with `guard_egress` a request
forgery never connects and fails to start with a reason naming the host; allowed hosts and unguarded
servers work."""

from __future__ import annotations

from urllib.parse import urlsplit

import pytest

from assistant.engine import ToolCall
from assistant.tests.mcp_servers import notes_over_http
from assistant.tools.mcp import McpServers, McpStartError, parse_mcp_config
from config.testing.listener import recording_listener

TOKEN = "egress-notes-token-0123456789"


@pytest.fixture(scope="module", params=["http", "sse"])
def remote_notes(request):
    """The notes server over streamable HTTP or SSE on 127.0.0.1."""
    with notes_over_http(TOKEN, *(["--sse"] if request.param == "sse" else [])) as url:
        yield request.param, str(urlsplit(url).port), url


def config_for(transport: str, url: str) -> dict:
    return {"remote": {"type": transport, "url": url, "headers": {"Authorization": f"Bearer {TOKEN}"}}}


async def add_through(specs) -> str:
    async with McpServers(specs, start_timeout=10) as servers:
        outcome = await servers.run(ToolCall("t1", "remote__add", {"a": 2, "b": 3}))
    assert not outcome.is_error
    return outcome.content


def test_guard_egress_applies_to_every_server_of_the_call():
    specs = parse_mcp_config(
        {"a": {"type": "http", "url": "https://a.example/mcp"}, "b": {"type": "sse", "url": "https://b.example/sse"}},
        source="integrations",
        guard_egress=True,
    )
    assert [spec.guard_egress for spec in specs] == [True, True]
    assert not parse_mcp_config({"a": {"type": "http", "url": "https://a.example/mcp"}})[0].guard_egress


@pytest.mark.parametrize("transport", ["http", "sse"])
@pytest.mark.parametrize("host", ["127.0.0.1", "localhost", "[::ffff:127.0.0.1]"])
async def test_a_guarded_server_on_loopback_fails_to_start_without_connecting(transport, host):
    with recording_listener() as listener:
        specs = parse_mcp_config(config_for(transport, f"http://{host}:{listener.port}/mcp"), guard_egress=True)
        with pytest.raises(McpStartError) as error:
            async with McpServers(specs, start_timeout=10):
                pass
        accepted = listener.accepted
    message = str(error.value)
    assert message.startswith("MCP server 'remote' failed to start: The server may not connect to ")
    assert host.strip("[]") in message and "loopback" in message
    assert TOKEN not in message
    assert accepted == 0


async def test_an_unguarded_server_is_reached(remote_notes):
    transport, _, url = remote_notes
    assert await add_through(parse_mcp_config(config_for(transport, url))) == "5"


async def test_a_guarded_server_whose_host_is_allowed_is_reached(settings, remote_notes):
    transport, port, url = remote_notes
    settings.OUTBOUND_ALLOWED_HOSTS = [f"127.0.0.1:{port}"]
    assert await add_through(parse_mcp_config(config_for(transport, url), guard_egress=True)) == "5"


async def test_a_guarded_server_allowed_at_save_is_refused_once_no_longer_allowed(settings, remote_notes):
    from config.egress import check_url

    transport, port, _ = remote_notes
    url = f"http://localhost:{port}/{'sse' if transport == 'sse' else 'mcp'}"
    settings.OUTBOUND_ALLOWED_HOSTS = ["localhost"]
    check_url(url)
    settings.OUTBOUND_ALLOWED_HOSTS = []
    with pytest.raises(McpStartError, match="The server may not connect to localhost"):
        await add_through(parse_mcp_config(config_for(transport, url), guard_egress=True))
