"""The Prometheus series in one process: who may read /metrics, and the values moving as requests, turns,
model calls, tools, tokens, cost, budget refusals, websockets and Claire requests happen. Parsed with
prometheus-client's own parser; the model is the fake Anthropic server, Claire the fake Claire server."""

from __future__ import annotations

from decimal import Decimal

import pytest
from asgiref.sync import sync_to_async
from django.test import Client

from agents.models import AIAgent, LLMProviderConfig
from assistant.tests.conftest import connect, frames_until
from config.testing.fake_anthropic import Reply, ToolUse
from observability import metrics
from observability.tests.scrape import scrape, scraped_when
from usage.services import usage_add

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def web() -> Client:
    return Client(HTTP_HOST="localhost")


# --- who may read it ----------------------------------------------------------------------------


def test_it_serves_the_text_format_to_a_client_on_this_machine(web):
    page = scrape(web)
    for name in ("conduit_turns_running", "conduit_websocket_connections", "conduit_budget_refusals_total"):
        assert page.has(name), name


def test_it_refuses_remote_and_forwarded_clients_without_a_token(web):
    assert web.get("/metrics", REMOTE_ADDR="203.0.113.7").status_code == 403
    # A reverse proxy on this machine makes every client look local: a forwarded request is not local.
    forwarded = web.get("/metrics", HTTP_X_FORWARDED_FOR="203.0.113.7")
    assert forwarded.status_code == 403
    assert forwarded.json()["detail"]["code"] == "permission_denied"
    assert b"conduit_" not in forwarded.content


def test_with_a_token_it_answers_only_its_bearer_from_anywhere(web, settings):
    settings.METRICS_TOKEN = "metrics-token-0123456789"
    assert web.get("/metrics").status_code == 401  # loopback alone is no longer enough
    wrong = web.get("/metrics", HTTP_AUTHORIZATION="Bearer metrics-token-wrong")
    assert wrong.status_code == 401 and wrong["WWW-Authenticate"].startswith("Bearer")
    assert web.get("/metrics", HTTP_AUTHORIZATION="Basic metrics-token-0123456789").status_code == 401
    page = scrape(web, REMOTE_ADDR="203.0.113.7", HTTP_AUTHORIZATION="Bearer metrics-token-0123456789")
    assert page.has("conduit_turns_running")


def test_it_answers_get_only_and_404_when_metrics_are_off(web, settings):
    assert web.post("/metrics").status_code == 405
    settings.METRICS_ENABLED = False
    assert web.get("/metrics").status_code == 404


# --- HTTP requests ------------------------------------------------------------------------------


def test_requests_are_counted_by_url_pattern_not_by_path(web):
    before = scrape(web)
    web.get("/health")
    web.get("/v1/models/some-agent")  # 401: no key
    web.get("/v1/models/another-agent")
    web.get("/no/such/page/12345")
    after = scrape(web)

    def moved(**labels) -> float:
        return after.value("conduit_http_requests_total", **labels) - before.value("conduit_http_requests_total", **labels)

    assert moved(method="GET", route="/health", status="200") == 1
    assert moved(method="GET", route="/v1/models/<str:model>", status="401") == 2
    assert moved(method="GET", route="unmatched", status="404") == 1
    assert not any("some-agent" in str(labels) or "12345" in str(labels) for _, labels, _ in after.samples)
    count = "conduit_http_request_duration_seconds_count"
    assert after.value(count, route="/health") - before.value(count, route="/health") == 1


# --- turns, model calls, tools, tokens, cost ----------------------------------------------------


@pytest.fixture
def tool_agent(agent) -> AIAgent:
    """The organization's agent with the file tools, its config priced."""
    LLMProviderConfig.objects.filter(pk=agent.llm_config_id).update(
        price_input_per_mtok=Decimal("3"), price_output_per_mtok=Decimal("15")
    )
    agent.workspace_tools = AIAgent.WorkspaceTools.FILES
    agent.save()
    return agent


async def test_a_websocket_turn_with_a_tool_moves_turns_models_tokens_tools_and_cost(web, user, tool_agent, fake):
    before = await sync_to_async(scrape)(web)
    fake.script(
        Reply(tool_uses=[ToolUse("list_directory", {})], stop_reason="tool_use", input_tokens=100, output_tokens=20),
        Reply(text=["The", " workspace", " is", " empty."], input_tokens=200, output_tokens=4),
    )
    ws = await connect(user)
    during = await sync_to_async(scrape)(web)
    assert during.value("conduit_websocket_connections") == before.value("conduit_websocket_connections") + 1
    await ws.send_json_to({"type": "start", "agent": tool_agent.slug, "message": "What is in the workspace?"})
    frames = await frames_until(ws, "result", "error")
    assert frames[-1]["type"] == "result", frames[-1]
    await ws.disconnect()
    ended = before.value("conduit_turns_total", transport="websocket") + 1
    after = await sync_to_async(scraped_when)(
        lambda: scrape(web), lambda page: page.value("conduit_turns_total", transport="websocket") >= ended
    )

    def moved(name: str, **labels) -> float:
        return after.value(name, **labels) - before.value(name, **labels)

    assert moved("conduit_turns_total", transport="websocket", status="complete") == 1
    assert moved("conduit_turn_duration_seconds_count", transport="websocket") == 1
    assert moved("conduit_turn_first_token_seconds_count", transport="websocket") == 1
    assert after.value("conduit_turns_running") == before.value("conduit_turns_running")
    model = {"provider": "anthropic", "model": "claude-test-1"}
    assert moved("conduit_model_calls_total", outcome="ok", **model) == 2
    assert moved("conduit_model_tokens_total", kind="input", **model) == 300
    assert moved("conduit_model_tokens_total", kind="output", **model) == 24
    # 300 input tokens at 3 and 24 output tokens at 15 per million.
    assert moved("conduit_model_cost_total", **model) == pytest.approx(300 * 3 / 1e6 + 24 * 15 / 1e6)
    assert moved("conduit_tool_calls_total", outcome="ok") == 1
    assert moved("conduit_tool_call_duration_seconds_count") == 1
    assert after.value("conduit_websocket_connections") == before.value("conduit_websocket_connections")
    assert not any(tool_agent.slug in str(labels) for _, labels, _ in after.samples)  # agents are not labels


async def test_a_failing_tool_and_a_failing_model_call_are_counted_as_errors(web, user, tool_agent, fake):
    before = await sync_to_async(scrape)(web)
    fake.script(
        Reply(tool_uses=[ToolUse("read_file", {"path": "missing.txt"})], stop_reason="tool_use"),
        Reply(text=["Partly", " done"], error_after=1),
    )
    ws = await connect(user)
    await ws.send_json_to({"type": "start", "agent": tool_agent.slug, "message": "Read it."})
    frames = await frames_until(ws, "result", "error")
    await ws.disconnect()
    assert frames[-1]["type"] == "error"
    ended = before.value("conduit_turns_total", transport="websocket") + 1
    after = await sync_to_async(scraped_when)(
        lambda: scrape(web), lambda page: page.value("conduit_turns_total", transport="websocket") >= ended
    )

    def moved(name: str, **labels) -> float:
        return after.value(name, **labels) - before.value(name, **labels)

    assert moved("conduit_tool_calls_total", outcome="error") == 1
    assert moved("conduit_model_calls_total", outcome="error", model="claude-test-1") == 1
    assert moved("conduit_turns_total", transport="websocket", status="error") == 1


async def test_a_budget_refusal_is_counted(web, user, agent, fake, settings):
    settings.BUDGET_USER_MONTHLY_TOKENS = 100
    await sync_to_async(usage_add)(user_id=user.pk, usage={"input_tokens": 100}, cost=Decimal("0"))
    before = await sync_to_async(scrape)(web)
    ws = await connect(user)
    await ws.send_json_to({"type": "start", "agent": "helper", "message": "Anything left?"})
    error = await ws.receive_json_from(5)
    await ws.disconnect()
    assert error["code"] == "budget_exceeded"
    after = await sync_to_async(scrape)(web)
    assert after.value("conduit_budget_refusals_total") - before.value("conduit_budget_refusals_total") == 1
    assert fake.requests == []


def test_model_labels_are_capped_against_users_choosing_endless_model_names(monkeypatch):
    monkeypatch.setattr(metrics, "_model_labels", set())
    monkeypatch.setattr(metrics, "MODEL_LABELS_MAX", 3)
    labels = [metrics._model_label("openai", f"model-{n}") for n in range(5)]
    assert labels[:3] == [("openai", "model-0"), ("openai", "model-1"), ("openai", "model-2")]
    assert labels[3:] == [("openai", "other"), ("openai", "other")]
    assert metrics._model_label("openai", "model-1") == ("openai", "model-1")  # one seen before keeps its name
    assert metrics._model_label("anthropic", "x" * 500)[1] == "other"


# --- the organization server --------------------------------------------------------------------


def test_claire_requests_are_counted_by_route_and_status(web, auth_client, claire, settings):
    before = scrape(web)
    assert auth_client.get("/bots").status_code == 200
    settings.CLAIRE_BASE_URL = "http://127.0.0.1:9"  # nothing listens: unreachable
    settings.CLAIRE_RETRIES = 0
    from django.core.cache import cache

    cache.clear()
    assert auth_client.get("/bots").status_code in (502, 503)
    after = scrape(web)

    def moved(**labels) -> float:
        name = "conduit_orgproxy_upstream_requests_total"
        return after.value(name, **labels) - before.value(name, **labels)

    assert moved(route="/m2m/organizations/bots", status="200") == 1
    assert moved(route="/m2m/organizations/bots", status="unreachable") >= 1


# --- the run API: its turns and the overhead header ---------------------------------------------


async def test_a_run_api_turn_is_counted_and_answered_with_the_servers_overhead(web, user, agent, fake):
    from assistant.tests.surfaces.test_run_api import body_of, client_for

    before = await sync_to_async(scrape)(web)
    client = await client_for(user)
    response = await client.run({"message": "hi"})
    assert response.status_code == 200
    await body_of(response)  # the whole stream: the turn ends
    overhead = response["X-Conduit-Overhead-Ms"]
    assert overhead.isdecimal() and int(overhead) < 30_000
    done = before.value("conduit_turns_total", transport="run", status="complete") + 1
    after = await sync_to_async(scraped_when)(
        lambda: scrape(web), lambda page: page.value("conduit_turns_total", transport="run", status="complete") >= done
    )
    assert after.value("conduit_turns_total", transport="run", status="complete") == done
    route = {"method": "POST", "route": "/api/v1/agents/<str:slug>/run", "status": "200"}
    assert after.value("conduit_http_requests_total", **route) - before.value("conduit_http_requests_total", **route) == 1


def test_other_answers_carry_no_overhead_header(web):
    assert "X-Conduit-Overhead-Ms" not in web.get("/health")
