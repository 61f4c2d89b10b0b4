"""Metrics and traces of a real `manage.py run` with two worker processes: a scrape answered by either
worker returns the totals of both (prometheus-client's multiprocess mode; a killed worker's gauges drop
out, its counters stay), and the spans of a `/v1` turn and of a websocket turn with a tool reach a real
OTLP/HTTP receiver (decoded with opentelemetry-proto), with the GenAI attributes, the caller's trace
continued and the trace context sent on to the model and to an HTTP MCP server."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import time
import uuid
from pathlib import Path

import openai
import pytest
from prometheus_client.mmap_dict import MmapedDict

from assistant.tests.mcp_servers import notes_over_http
from assistant.tests.surfaces.test_live_servers import open_socket, receive_until, seed_over_api
from assistant.tests.surfaces.test_openai_api_live import child_database, manage_shell  # noqa: F401
from config.testing.fake_anthropic import Reply, ToolUse, fake_anthropic_server
from config.testing.processes import http_json, running_server, serving_pids, signed_up
from observability.tests.otlp_receiver import otlp_receiver
from observability.tests.scrape import Scrape, scraped_when

pytestmark = pytest.mark.django_db(transaction=True, reset_sequences=True)

TOKEN = "served-metrics-token-0123456789"
NOTES_SECRET = "served-notes-secret-0123456789"
SERVER_KIND, CLIENT_KIND = 2, 3  # OTLP's SpanKind numbers


@pytest.fixture(scope="module")
def receiver():
    with otlp_receiver() as running:
        yield running


@pytest.fixture(scope="module")
def metrics_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("metrics")


@pytest.fixture(scope="module")
def server(child_database, receiver, metrics_dir):  # noqa: F811
    env = {
        "DATABASE_URL": child_database, "ANTHROPIC_MAX_RETRIES": "0", "OUTBOUND_ALLOWED_HOSTS": "127.0.0.1",
        "METRICS_TOKEN": TOKEN, "PROMETHEUS_MULTIPROC_DIR": str(metrics_dir),
        "OTEL_EXPORTER_OTLP_ENDPOINT": receiver.base_url, "OTEL_SERVICE_NAME": "conduit-served-test",
        "OTEL_BSP_SCHEDULE_DELAY": "50",  # ms: spans reach the receiver soon after they end
    }  # fmt: skip
    with running_server(env, workers=2) as base:
        yield base


@pytest.fixture
def fake_model():
    with fake_anthropic_server() as fake:
        yield fake


@pytest.fixture
def notes(tmp_path):
    """The notes MCP server over streamable HTTP, writing down the `traceparent` of each request it gets."""
    record = tmp_path / "traceparents"
    with notes_over_http(NOTES_SECRET, "--record-headers", str(record)) as url:
        yield url, record


def scrape(base: str) -> Scrape:
    import urllib.request

    request = urllib.request.Request(f"{base}/metrics", headers={"Authorization": f"Bearer {TOKEN}"})
    with urllib.request.urlopen(request, timeout=10) as response:  # a new connection: either worker answers
        assert response.status == 200
        return Scrape(response.read().decode())


def values_by_pid(metrics_dir: Path, kind: str, sample: str, **labels: str) -> dict[int, float]:
    """Each worker's own value of a series (summed over the labels not given), read from its files in the
    shared directory (`kind`: counter, gauge_livesum…)."""
    found: dict[int, float] = {}
    for path in metrics_dir.glob(f"{kind}_*.db"):
        pid = int(path.stem.rsplit("_", 1)[1])
        for key, value, _, _ in MmapedDict.read_all_values_from_file(str(path)):
            _, name, its_labels, _ = json.loads(key)
            if name == sample and all(its_labels.get(k) == v for k, v in labels.items()):
                found[pid] = found.get(pid, 0) + value
    return found


def completions_counted_by_pid(metrics_dir: Path) -> dict[int, float]:
    """Each worker's own count of finished /v1 turns."""
    return values_by_pid(metrics_dir, "counter", "conduit_turns_total", transport="openai", status="complete")


def ask(base: str, key: str, slug: str, text: str, **headers):
    client = openai.OpenAI(api_key=key, base_url=f"{base}/v1", max_retries=0, timeout=30)  # its own connection
    try:
        return client.chat.completions.with_raw_response.create(
            model=slug, messages=[{"role": "user", "content": text}], extra_headers=headers
        )
    finally:
        client.close()


def api_key(base: str, token: str) -> str:
    status, created = http_json("POST", f"{base}/api/v1/auth/api-keys", {"name": "metrics"}, token)
    assert status == 201, created
    return created["key"]


def test_a_scrape_from_either_worker_returns_the_totals_of_both(server, fake_model, metrics_dir):
    token, slug = seed_over_api(server, fake_model.base_url)
    key = api_key(server, token)
    before = scrape(server)
    workers = set(serving_pids(server))
    assert len(workers) == 2
    turns = 0
    while turns < 40:  # until both workers have answered some (the kernel picks who accepts)
        raw = ask(server, key, slug, f"Question {turns}")
        turns += 1
        overhead = raw.headers["X-Conduit-Overhead-Ms"]
        assert overhead.isdecimal() and int(overhead) < 30_000
        if set(completions_counted_by_pid(metrics_dir)) >= workers and turns >= 4:
            break
    counted = completions_counted_by_pid(metrics_dir)
    assert set(counted) >= workers and all(counted[pid] > 0 for pid in workers)
    done = before.value("conduit_turns_total", transport="openai", status="complete") + turns
    # The last turn's runner ends just after its answer went out.
    scraped_when(lambda: scrape(server), lambda page: page.value("conduit_turns_total", transport="openai") >= done)
    for _ in range(6):  # each scrape on a new connection, answered by either worker: always the sum
        page = scrape(server)

        def moved(name: str, **labels) -> float:
            return page.value(name, **labels) - before.value(name, **labels)

        assert moved("conduit_turns_total", transport="openai", status="complete") == turns
        model = {"provider": "anthropic", "model": "claude-test-1"}
        assert moved("conduit_model_calls_total", outcome="ok", **model) == turns
        # The fake's default answer: 12 input tokens, 5 output tokens.
        assert moved("conduit_model_tokens_total", kind="input", **model) == 12 * turns
        assert moved("conduit_model_tokens_total", kind="output", **model) == 5 * turns
        assert moved("conduit_http_requests_total", route="/v1/chat/completions", status="200") == turns
        assert page.value("conduit_turns_running") == 0


def test_a_v1_turn_is_traced_from_the_callers_span_to_the_model(server, fake_model, receiver):
    token, slug = seed_over_api(server, fake_model.base_url)
    key = api_key(server, token)
    trace_id, caller_span = uuid.uuid4().hex, uuid.uuid4().hex[:16]

    raw = ask(server, key, slug, "A private question about tulips", traceparent=f"00-{trace_id}-{caller_span}-01")
    assert raw.parse().choices[0].message.content == "Hello from the fake model."

    def spans_of_the_turn(spans):
        mine = [span for span in spans if span.trace_id == trace_id]
        return mine if any(span.name.startswith("chat ") for span in mine) and len(mine) >= 3 else None

    spans = receiver.wait_for(spans_of_the_turn)
    assert spans, "the turn's spans did not reach the receiver"
    [http] = [span for span in spans if span.kind == SERVER_KIND]
    assert http.name == "POST /v1/chat/completions" and http.parent_span_id == caller_span
    assert http.attributes["http.route"] == "/v1/chat/completions"
    assert http.attributes["http.response.status_code"] == 200
    assert http.resource["service.name"] == "conduit-served-test"
    [agent] = [span for span in spans if span.name == f"invoke_agent {slug}"]
    assert agent.parent_span_id == http.span_id
    assert agent.attributes["gen_ai.operation.name"] == "invoke_agent"
    [chat] = [span for span in spans if span.name == "chat claude-test-1"]
    assert chat.kind == CLIENT_KIND and chat.parent_span_id == agent.span_id
    assert chat.attributes == {
        "gen_ai.operation.name": "chat",
        "gen_ai.provider.name": "anthropic",
        "gen_ai.request.model": "claude-test-1",
        "gen_ai.response.model": "claude-test-1",
        "gen_ai.usage.input_tokens": 12,
        "gen_ai.usage.output_tokens": 5,
        "gen_ai.response.finish_reasons": ["end_turn"],
    }
    # The model provider got the trace context of the `chat` span.
    [model_request] = fake_model.requests
    assert model_request.headers["traceparent"] == f"00-{trace_id}-{chat.span_id}-01"
    # No prompt or answer text in any span (OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT is unset).
    assert "tulips" not in repr(spans) and "fake model" not in repr(spans)


def test_a_websocket_turn_with_a_tool_is_traced_and_counted(server, fake_model, receiver, child_database):  # noqa: F811
    token, _ = seed_over_api(server, fake_model.base_url)
    slug = f"org-tools-{uuid.uuid4().hex[:6]}"
    manage_shell(
        child_database,
        "from agents.models import AIAgent, LLMProviderConfig; "
        f"c = LLMProviderConfig.objects.create(name={slug!r}, provider='anthropic', model='claude-test-1', "
        f"base_url={fake_model.base_url!r}, api_key='sk-test', max_tokens=256); "
        f"AIAgent.objects.create(name='Tools', slug={slug!r}, system_prompt_text='Use tools.', llm_config=c, "
        "is_active=True, workspace_tools='files')",
    )
    call = ToolUse("list_directory", {})
    fake_model.script(Reply(tool_uses=[call], stop_reason="tool_use"), Reply(text=["Empty."]))
    before = scrape(server)

    async def turn() -> list[dict]:
        socket = await open_socket(server, token)
        try:
            await socket.send(json.dumps({"type": "start", "agent": slug, "message": "List the workspace."}))
            return await receive_until(socket, "result", "error")
        finally:
            await socket.close()

    frames = asyncio.run(turn())
    assert frames[-1]["type"] == "result", frames[-1]
    session_id = frames[-1]["session_id"]

    def spans_of_the_turn(spans):
        agents = [s for s in spans if s.name == f"invoke_agent {slug}"]
        if not agents:
            return None
        [agent] = agents
        assert agent.attributes["gen_ai.conversation.id"] == str(session_id)
        mine = [s for s in spans if s.trace_id == agent.trace_id]
        return mine if len([s for s in mine if s.name.startswith("chat ")]) == 2 else None

    spans = receiver.wait_for(spans_of_the_turn)
    assert spans, "the turn's spans did not reach the receiver"
    by_name = {span.name: span for span in spans}
    root = by_name["websocket turn"]
    agent = by_name[f"invoke_agent {slug}"]
    tool = by_name["execute_tool list_directory"]
    assert agent.parent_span_id == root.span_id and tool.parent_span_id == agent.span_id
    assert tool.attributes["gen_ai.tool.name"] == "list_directory"
    assert tool.attributes["gen_ai.tool.call.id"] == call.id
    assert tool.attributes["gen_ai.operation.name"] == "execute_tool"
    assert all(span.parent_span_id == agent.span_id for span in spans if span.name.startswith("chat "))

    ended = before.value("conduit_turns_total", transport="websocket") + 1
    after = scraped_when(
        lambda: scrape(server),
        lambda page: page.value("conduit_turns_total", transport="websocket") >= ended
        and page.value("conduit_websocket_connections") == 0,  # the closed socket's disconnect handled
    )
    assert after.value("conduit_turns_total", transport="websocket", status="complete") - before.value(
        "conduit_turns_total", transport="websocket", status="complete"
    ) == 1
    assert after.value("conduit_tool_calls_total", outcome="ok") - before.value("conduit_tool_calls_total", outcome="ok") == 1
    assert after.value("conduit_websocket_connections") == 0


def test_a_turn_sends_its_trace_context_to_an_http_mcp_server(server, fake_model, receiver, notes):
    notes_url, record = notes
    token, slug = seed_over_api(server, fake_model.base_url)
    status, integration = http_json(
        "POST", f"{server}/api/v1/integrations",
        {"provider": "custom", "name": "notes", "mcp_server": {"type": "http", "url": notes_url},
         "credentials": NOTES_SECRET}, token,
    )  # fmt: skip
    assert status == 201, integration
    status, agents = http_json("GET", f"{server}/api/v1/agents?slug={slug}", None, token)
    [agent] = [a for a in agents["results"] if a["slug"] == slug]
    status, agent = http_json(
        "PATCH", f"{server}/api/v1/agents/{agent['id']}", {"integrations": [integration["id"]], "max_turns": 3}, token
    )
    assert status == 200, agent
    call = ToolUse("notes__add", {"a": 2, "b": 3})
    fake_model.script(Reply(tool_uses=[call], stop_reason="tool_use"), Reply(text=["Five."]))
    trace_id, caller_span = uuid.uuid4().hex, uuid.uuid4().hex[:16]

    raw = ask(server, api_key(server, token), slug, "Add 2 and 3.", traceparent=f"00-{trace_id}-{caller_span}-01")
    assert raw.parse().choices[0].message.content == "Five."

    def spans_of_the_turn(spans):
        # All of them: spans are exported as they end, in batches (the agent's span ends after its chats).
        mine = [span for span in spans if span.trace_id == trace_id]
        names = [span.name for span in mine]
        whole = f"invoke_agent {slug}" in names and "execute_tool notes__add" in names
        return mine if whole and len([name for name in names if name.startswith("chat ")]) == 2 else None

    spans = receiver.wait_for(spans_of_the_turn)
    assert spans, "the turn's spans did not reach the receiver"
    [agent_span] = [span for span in spans if span.name == f"invoke_agent {slug}"]
    [tool_span] = [span for span in spans if span.name == "execute_tool notes__add"]
    assert tool_span.parent_span_id == agent_span.span_id
    # The tool ran on the MCP server: its answer went back to the model.
    [result] = [b for b in fake_model.requests[1].body["messages"][-1]["content"] if b["type"] == "tool_result"]
    assert result["tool_use_id"] == call.id and "5" in json.dumps(result["content"]) and not result.get("is_error")
    # Every request of the MCP connection (initialize, tools/list, tools/call…) carried the trace context of
    # the turn that opened it: its `invoke_agent` span.
    sent = record.read_text().split()
    assert len(sent) >= 3, sent
    assert set(sent) == {f"00-{trace_id}-{agent_span.span_id}-01"}


def test_the_scrape_needs_the_token(server):
    status, body = http_json("GET", f"{server}/metrics", None)
    assert status == 401 and body["detail"]["code"] == "not_authenticated"


def test_a_dead_workers_gauges_stop_counting_and_its_counters_stay(server, metrics_dir):
    """A worker killed with a socket open: once the supervisor has restarted it, the scrape no longer
    counts that socket (livesum gauges of live processes only), while the requests it answered still
    count. Last in the module: it replaces one of the shared server's workers."""
    _, token = signed_up(server)
    me = {"route": "/api/v1/auth/me", "method": "GET", "status": "200"}

    async def killed_holding_a_socket() -> tuple[int, float]:
        socket = await open_socket(server, token)
        try:
            page = scraped_when(lambda: scrape(server), lambda page: page.value("conduit_websocket_connections") == 1)
            assert page.value("conduit_websocket_connections") == 1
            open_by_pid = values_by_pid(metrics_dir, "gauge_livesum", "conduit_websocket_connections")
            [holder] = [pid for pid, sockets in open_by_pid.items() if sockets == 1]
            for _ in range(40):  # requests only this test makes, until the holder has answered some
                assert http_json("GET", f"{server}/api/v1/auth/me", None, token)[0] == 200
                if values_by_pid(metrics_dir, "counter", "conduit_http_requests_total", **me).get(holder):
                    break
            assert values_by_pid(metrics_dir, "counter", "conduit_http_requests_total", **me).get(holder)
            answered = scrape(server).value("conduit_http_requests_total", **me)
            os.kill(holder, signal.SIGKILL)  # no disconnect handled, no gauge decremented
            return holder, answered
        finally:
            await socket.close()

    holder, answered = asyncio.run(killed_holding_a_socket())
    deadline = time.monotonic() + 30
    while not (len(pids := serving_pids(server)) == 2 and holder not in pids) and time.monotonic() < deadline:
        time.sleep(0.1)  # the supervisor restarts it
    assert holder not in serving_pids(server) and len(serving_pids(server)) == 2
    after = scraped_when(lambda: scrape(server), lambda page: page.value("conduit_websocket_connections") == 0)
    assert after.value("conduit_websocket_connections") == 0
    assert after.value("conduit_http_requests_total", **me) == answered
