"""A user's base URL through the real SDK and the agent loop: with `guard_egress` a request forgery
never connects, fails at once (no retries) with `egress_refused`; allowed hosts and unguarded configs work."""

from __future__ import annotations

import logging

import pytest

from assistant.engine import LoopFinished, LoopRequest, ModelSettings, TextDelta, agent_loop
from assistant.llm import LLMError
from config.testing.fake_anthropic import Reply, fake_anthropic_server
from config.testing.listener import recording_listener


@pytest.fixture
def fake():
    with fake_anthropic_server() as server:
        yield server


@pytest.fixture
def listener():
    with recording_listener() as listener:
        yield listener


@pytest.fixture
def sdk_log(caplog):
    caplog.set_level(logging.INFO, logger="anthropic")
    return caplog


async def answer(base_url: str, *, guard_egress: bool) -> str:
    model = ModelSettings(
        model="claude-test-1", api_key="sk-user-key", base_url=base_url, max_tokens=64, guard_egress=guard_egress
    )
    request = LoopRequest(model=model, messages=[{"role": "user", "content": "Hi"}])
    events = [event async for event in agent_loop(request)]
    assert isinstance(events[-1], LoopFinished)
    return "".join(event.text for event in events if isinstance(event, TextDelta))


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost", "2130706433", "[::ffff:127.0.0.1]"])
async def test_a_guarded_base_url_on_loopback_is_refused_without_connecting_or_retrying(
    settings, listener, sdk_log, host
):
    settings.ANTHROPIC_MAX_RETRIES = 2  # the SDK would retry a connection error twice, with backoff
    with pytest.raises(LLMError) as error:
        await answer(f"http://{host}:{listener.port}", guard_egress=True)
    assert error.value.code == "egress_refused" and not error.value.retryable
    assert "The server may not connect to" in error.value.message and "loopback" in error.value.message
    assert host.strip("[]") in error.value.message
    assert listener.accepted == 0
    assert "Retrying request" not in sdk_log.text


async def test_the_same_call_without_the_guard_does_connect_and_is_retried(settings, listener, sdk_log):
    # What the guard prevents: the SDK connects to whatever the base URL says, and retries.
    settings.ANTHROPIC_MAX_RETRIES = 1
    with pytest.raises(LLMError) as error:
        await answer(f"http://127.0.0.1:{listener.port}", guard_egress=False)
    assert error.value.code == "upstream_unavailable"
    assert listener.accepted == 2
    assert "Retrying request" in sdk_log.text


async def test_an_unguarded_config_reaches_the_fake_api(settings, fake):
    settings.ANTHROPIC_MAX_RETRIES = 0
    fake.script(Reply(text=["Hel", "lo"]))
    assert await answer(fake.base_url, guard_egress=False) == "Hello"
    assert len(fake.requests) == 1


async def test_a_guarded_config_whose_host_is_allowed_reaches_the_fake_api(settings, fake):
    settings.ANTHROPIC_MAX_RETRIES = 0
    settings.OUTBOUND_ALLOWED_HOSTS = [fake.base_url.removeprefix("http://")]  # 127.0.0.1:<port>
    fake.script(Reply(text=["Hi ", "there"]))
    assert await answer(fake.base_url, guard_egress=True) == "Hi there"
    sent = fake.requests[0].headers
    assert len(fake.requests) == 1
    assert sent.get("x-api-key", sent.get("authorization")) in {"sk-user-key", "Bearer sk-user-key"}


async def test_a_guarded_config_allowed_at_save_is_refused_once_no_longer_allowed(settings, fake):
    # The URL passed the save-time check while `localhost` was allowed; connecting checks again.
    from config.egress import check_url

    settings.ANTHROPIC_MAX_RETRIES = 0
    port = fake.base_url.rsplit(":", 1)[1]
    settings.OUTBOUND_ALLOWED_HOSTS = ["localhost"]
    check_url(f"http://localhost:{port}")
    settings.OUTBOUND_ALLOWED_HOSTS = []
    with pytest.raises(LLMError) as error:
        await answer(f"http://localhost:{port}", guard_egress=True)
    assert error.value.code == "egress_refused" and "localhost" in error.value.message
    assert fake.requests == []


async def test_a_redirect_from_an_allowed_server_to_loopback_is_refused(settings, listener, sdk_log):
    # The SDK follows redirects; the connection to the new host is checked like the first.
    from http.server import BaseHTTPRequestHandler

    from config.testing.servers import serve_http

    class Redirect(BaseHTTPRequestHandler):
        def log_message(self, format, *args):  # noqa: A002
            pass

        def do_POST(self):  # noqa: N802
            self.server.hits += 1
            self.send_response(307)
            self.send_header("Location", f"http://127.0.0.1:{listener.port}/v1/messages")
            self.send_header("Content-Length", "0")
            self.end_headers()

    settings.ANTHROPIC_MAX_RETRIES = 2
    with serve_http(Redirect, hits=0) as server:
        settings.OUTBOUND_ALLOWED_HOSTS = [server.base_url.removeprefix("http://")]
        with pytest.raises(LLMError) as error:
            await answer(server.base_url, guard_egress=True)
        hits = server.hits
    assert error.value.code == "egress_refused" and "127.0.0.1" in error.value.message
    assert hits == 1 and listener.accepted == 0
    assert "Retrying request" not in sdk_log.text


async def test_guarded_and_unguarded_clients_are_cached_apart(fake):
    from assistant.llm import async_client

    plain = ModelSettings(model="m", api_key="k", base_url=fake.base_url)
    guarded = ModelSettings(model="m", api_key="k", base_url=fake.base_url, guard_egress=True)
    assert async_client(plain) is async_client(plain)
    assert async_client(guarded) is async_client(guarded)
    assert async_client(plain) is not async_client(guarded)
