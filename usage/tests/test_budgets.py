"""Budgets refuse at the limit on every path; usage and cost equal what the model reported × prices."""

from __future__ import annotations

import asyncio
import dataclasses
from decimal import Decimal

import pytest
from asgiref.sync import sync_to_async
from django.contrib.auth.models import Group

from agents.models import Message
from assistant import runs
from assistant.engine import ToolCall, ToolOutcome
from assistant.tests.conftest import connect, frames_until, token_for
from assistant.tests.surfaces.test_sse import PATH, SseClient, events_of
from config.testing.fake_anthropic import Reply, ToolUse
from usage.models import Budget, UsageCounter
from usage.services import BudgetExceeded, budget_check, month_start, usage_add

pytestmark = pytest.mark.django_db(transaction=True)

# The fake's default reply: 12 input tokens, 1 output token per text chunk.
ONE_CHUNK_TOKENS = 13


def spend(user, tokens: int, cost: str = "0") -> None:
    usage_add(user_id=user.pk, usage={"input_tokens": tokens}, cost=Decimal(cost))


def assistant_messages(user) -> int:
    return Message.objects.filter(session__owner=user, role="assistant").count()


async def run_plan(plan) -> list[dict]:
    queue: asyncio.Queue = asyncio.Queue()
    runner = runs.TurnRunner(plan, listeners=[queue])
    await asyncio.wait_for(runner.start(), 10)
    frames = []
    while not queue.empty():
        frames.append(queue.get_nowait())
    return frames


# --- turn_begin (every transport's first step: websocket, SSE, the REST run API) ---------------


def test_turn_begin_refuses_exactly_at_the_token_limit_and_stores_nothing(user, agent, settings):
    settings.BUDGET_USER_MONTHLY_TOKENS = 100
    spend(user, 100)
    with pytest.raises(runs.TurnRefused) as refused:
        runs.turn_begin(user=user, text="hi", agent_slug="helper")
    assert refused.value.code == "budget_exceeded"
    assert "Your monthly token budget" in refused.value.message and "100 of 100 tokens" in refused.value.message
    assert "resets on" in refused.value.message
    assert Message.objects.filter(session__owner=user).count() == 0


async def test_a_turn_just_under_the_limit_runs(user, agent, fake, settings):
    settings.BUDGET_USER_MONTHLY_TOKENS = 100
    await sync_to_async(spend)(user, 99)
    fake.script(Reply(text=["Hi."]))
    plan = await sync_to_async(runs.turn_begin)(user=user, text="hi", agent_slug="helper")
    frames = await run_plan(plan)
    assert frames[-1]["type"] == "result" and frames[-1]["status"] == "complete"
    counter = await UsageCounter.objects.aget(user=user, month=month_start())
    assert counter.total_tokens == 99 + ONE_CHUNK_TOKENS
    # Now over: the next one is refused before the model is reached.
    with pytest.raises(runs.TurnRefused):
        await sync_to_async(runs.turn_begin)(user=user, text="again", session_id=plan.session_id)
    assert len(fake.requests) == 1


def test_cost_budget_and_organization_cap_refuse_too(user, other_user, agent, settings):
    settings.BUDGET_USER_MONTHLY_COST = Decimal("0.50")
    spend(user, 1, cost="0.50")
    with pytest.raises(BudgetExceeded, match="Your monthly cost budget"):
        budget_check(user.pk)
    budget_check(other_user.pk)  # not theirs
    Budget.objects.create(monthly_tokens=50)  # the organization's cap
    spend(other_user, 49)
    with pytest.raises(BudgetExceeded, match="The organization's monthly token budget"):
        budget_check(other_user.pk)  # 49 + user's 1 = 50


def test_user_and_group_overrides(user, settings):
    settings.BUDGET_USER_MONTHLY_TOKENS = 10
    spend(user, 20)
    with pytest.raises(BudgetExceeded):
        budget_check(user.pk)
    small, large = Group.objects.create(name="small"), Group.objects.create(name="large")
    user.groups.add(small, large)
    Budget.objects.create(group=small, monthly_tokens=15)
    Budget.objects.create(group=large, monthly_tokens=30)
    budget_check(user.pk)  # the most generous group: 30
    own = Budget.objects.create(user=user, monthly_tokens=20)
    with pytest.raises(BudgetExceeded):
        budget_check(user.pk)  # the user's own row wins over groups
    own.monthly_tokens = 0  # unlimited
    own.save()
    budget_check(user.pk)


# --- websocket and SSE ------------------------------------------------------------------------


async def test_websocket_refuses_with_budget_exceeded_at_the_limit(user, agent, fake, settings):
    settings.BUDGET_USER_MONTHLY_TOKENS = 100
    await sync_to_async(spend)(user, 100 - ONE_CHUNK_TOKENS)  # under: runs, and lands exactly on the limit
    fake.script(Reply(text=["Hi."]))
    ws = await connect(user)
    await ws.send_json_to({"type": "start", "agent": "helper", "message": "first"})
    frames = await frames_until(ws, "result", "error")
    assert frames[-1]["type"] == "result"
    await ws.send_json_to({"type": "start", "agent": "helper", "message": "second"})
    error = await ws.receive_json_from(5)
    assert error["type"] == "error" and error["code"] == "budget_exceeded"
    assert "100 of 100 tokens" in error["message"]
    await ws.disconnect()
    assert len(fake.requests) == 1
    assert await sync_to_async(assistant_messages)(user) == 1


async def test_sse_answers_429_before_the_stream_at_the_limit(user, code_agent, fake, settings):
    settings.BUDGET_USER_MONTHLY_TOKENS = 100
    await sync_to_async(spend)(user, 100 - ONE_CHUNK_TOKENS)  # under: runs, and lands exactly on the limit
    fake.script(Reply(text=["ok"]))
    client = SseClient(await sync_to_async(token_for)(user))
    first = await client.post(PATH, {"prompt": "one"}, content_type="application/json")
    assert first.status_code == 200
    events = await events_of(first)
    assert events[-1]["done"] is True and events[-1]["type"] == "system_status"
    second = await client.post(PATH, {"prompt": "two"}, content_type="application/json")
    assert second.status_code == 429
    assert second.json()["detail"]["code"] == "budget_exceeded"
    assert "100 of 100 tokens" in second.json()["detail"]["message"]
    assert len(fake.requests) == 1


# --- a tool loop crossing the budget midway ---------------------------------------------------


class EchoTools:
    def definitions(self):
        return [{"name": "echo", "description": "Echo", "input_schema": {"type": "object"}}]

    async def run(self, call: ToolCall) -> ToolOutcome:
        return ToolOutcome(call.id, "echoed")


async def test_a_tool_loop_crossing_the_budget_is_cut_before_its_next_model_call(user, agent, fake, settings):
    settings.BUDGET_USER_MONTHLY_TOKENS = 50
    await sync_to_async(spend)(user, 40)  # under: the turn starts; its first call (12 + 30) crosses it
    fake.script(
        Reply(text=["Checking."], tool_uses=[ToolUse("echo", {})], stop_reason="tool_use", output_tokens=30),
        Reply(text=["never asked for"]),
    )
    plan = await sync_to_async(runs.turn_begin)(user=user, text="go", agent_slug="helper")
    plan.request = dataclasses.replace(plan.request, tools=EchoTools(), max_turns=5)
    frames = await run_plan(plan)

    assert len(fake.requests) == 1  # the second call never reached the model
    assert frames[-1]["type"] == "error" and frames[-1]["code"] == "budget_exceeded"
    assert [f["type"] for f in frames] == ["session", "text_delta", "tool_use", "tool_result", "error"]
    stored = [m async for m in Message.objects.filter(session_id=plan.session_id).order_by("seq")]
    assert [(m.role, m.status) for m in stored] == [
        ("user", "complete"), ("assistant", "complete"), ("user", "complete"), ("assistant", "error")
    ]
    assert stored[1].content[0] == {"type": "text", "text": "Checking."}  # the partial work is kept
    assert stored[3].error_code == "budget_exceeded"
    counter = await UsageCounter.objects.aget(user=user, month=month_start())
    assert counter.total_tokens == 40 + 12 + 30


# --- figures ----------------------------------------------------------------------------------


async def test_usage_and_cost_equal_the_reported_usage_times_the_prices(user, agent, fake, api_client):
    config = agent.llm_config
    config.price_input_per_mtok = Decimal("3")
    config.price_output_per_mtok = Decimal("15")
    config.price_cache_read_per_mtok = Decimal("0.30")
    config.price_cache_write_per_mtok = Decimal("3.75")
    await config.asave()
    fake.script(Reply(text=["a", "b"], input_tokens=1000, output_tokens=2000, cache_read_input_tokens=10_000,
                      cache_creation_input_tokens=4000))  # fmt: skip
    plan = await sync_to_async(runs.turn_begin)(user=user, text="price me", agent_slug="helper")
    await run_plan(plan)
    expected = (Decimal(1000) * 3 + Decimal(2000) * 15 + Decimal(10_000) * Decimal("0.30") + Decimal(4000) * Decimal("3.75")) / 1_000_000
    message = await Message.objects.aget(pk=plan.assistant_message_id)
    assert (message.input_tokens, message.output_tokens) == (1000, 2000)
    assert message.cost == expected == Decimal("0.051")
    counter = await UsageCounter.objects.aget(user=user, month=month_start())
    assert (counter.input_tokens, counter.output_tokens, counter.cache_read_input_tokens,
            counter.cache_creation_input_tokens) == (1000, 2000, 10_000, 4000)  # fmt: skip
    assert counter.cost == expected
    org = await UsageCounter.objects.aget(user__isnull=True, month=month_start())
    assert org.cost == expected and org.output_tokens == 2000

    api_client.force_authenticate(user)
    body = (await sync_to_async(api_client.get)("/api/v1/usage")).json()
    assert body["input_tokens"] == 1000 and body["output_tokens"] == 2000 and body["total_tokens"] == 17_000
    assert Decimal(body["cost"]) == expected
    assert body["budget"]["tokens"] is None and body["budget"]["remaining_tokens"] is None
    assert body["period"]["resets_at"].endswith("Z") or "+00:00" in body["period"]["resets_at"]
    assert body["agents"] == [{
        "agent": "helper", "name": "Helper", "messages": 1, "input_tokens": 1000, "output_tokens": 2000,
        "cache_read_input_tokens": 10_000, "cache_creation_input_tokens": 4000, "cost": f"{expected:.8f}",
    }]  # fmt: skip


async def test_a_stopped_answer_counts_what_it_cost_once(user, agent, fake):
    fake.script(Reply(text=["a", "b", "c"], pause_after=1, input_tokens=50))
    plan = await sync_to_async(runs.turn_begin)(user=user, text="stop me", agent_slug="helper")
    queue: asyncio.Queue = asyncio.Queue()
    runner = runs.TurnRunner(plan, listeners=[queue])
    runner.start()
    while (await asyncio.wait_for(queue.get(), 5))["type"] != "text_delta":
        pass
    runner.request_stop()
    fake.release()
    await asyncio.wait_for(runner.done.wait(), 10)
    message = await Message.objects.aget(pk=plan.assistant_message_id)
    assert message.status == "stopped" and message.input_tokens == 50
    counter = await UsageCounter.objects.aget(user=user, month=month_start())
    assert (counter.input_tokens, counter.output_tokens) == (message.input_tokens, message.output_tokens)


def test_usage_api_shows_the_budget_and_what_remains(user, api_client, settings):
    settings.BUDGET_USER_MONTHLY_TOKENS = 1000
    spend(user, 300)
    api_client.force_authenticate(user)
    body = api_client.get("/api/v1/usage").json()
    assert body["total_tokens"] == 300
    assert body["budget"] == {"tokens": 1000, "cost": None, "source": "default", "remaining_tokens": 700,
                              "remaining_cost": None}  # fmt: skip
    assert api_client.__class__().get("/api/v1/usage").status_code == 401


def test_a_users_own_config_on_the_organizations_key_is_priced_by_the_organization(user, api_client, settings):
    """The attack: a user makes a config of their own without a base URL (so it spends the
    organization's key) hoping its calls cost nothing. Prices aren't theirs to set, and such a
    config is priced like the organization's config of the same model."""
    from agents.models import LLMProviderConfig
    from usage.services import prices_for_config

    LLMProviderConfig.objects.create(name="Org", model="claude-x", price_input_per_mtok=Decimal("3"),
                                     price_output_per_mtok=Decimal("15"))  # fmt: skip
    api_client.force_authenticate(user)
    created = api_client.post("/api/v1/llm-configs", {"name": "Mine", "model": "claude-x",
                                                      "price_input_per_mtok": "0", "price_output_per_mtok": "0"},
                              format="json")  # fmt: skip
    assert created.status_code == 201 and "price_input_per_mtok" not in created.json()
    mine = LLMProviderConfig.objects.get(pk=created.json()["id"])
    assert mine.price_input_per_mtok is None  # not writable through the API
    assert prices_for_config(mine.pk) == prices_for_config(LLMProviderConfig.objects.get(name="Org").pk)
    # Another model, no organization price for it: the settings' default prices.
    settings.PRICE_DEFAULT_INPUT_PER_MTOK = "1"
    mine.model = "claude-other"
    mine.save()
    assert prices_for_config(mine.pk).input == Decimal("1")
