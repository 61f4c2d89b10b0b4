"""Turns of an agent whose LLM config is an OpenAI-compatible endpoint, through the real turn runner
(websocket and runs.TurnRunner), the real openai SDK and the fake Chat Completions server; and a
session whose agent changes provider between turns, both ways."""

from __future__ import annotations

import asyncio
import dataclasses

import pytest
from asgiref.sync import sync_to_async

from agents.models import AIAgent, LLMProviderConfig, Message
from assistant import runs
from assistant.engine import ToolCall, ToolOutcome
from assistant.tests.conftest import connect, frames_until, texts, wait_for_message_status
from config.testing.fake_anthropic import Reply, ToolUse
from config.testing.fake_openai import Chunks, FunctionCall, HttpError, fake_openai_server

pytestmark = pytest.mark.django_db(transaction=True)

USAGE_FIELDS = ("input_tokens", "output_tokens", "cache_read_input_tokens", "cache_creation_input_tokens")


@pytest.fixture
def gpt(settings):
    settings.OPENAI_MAX_RETRIES = 0
    with fake_openai_server() as server:
        yield server


@pytest.fixture
def gpt_config(db, gpt):
    return LLMProviderConfig.objects.create(
        name="Fake GPT", provider="openai", model="gpt-test-1", base_url=gpt.base_url, api_key="sk-openai-test",
        max_tokens=300, temperature=0.4,
    )  # fmt: skip


@pytest.fixture
def gpt_agent(gpt_config):
    return AIAgent.objects.create(
        name="GPT helper", slug="gpt-helper", system_prompt_text="You are a helpful test agent.",
        llm_config=gpt_config, is_active=True,
    )  # fmt: skip


class LookupTools:
    def definitions(self):
        return [{"name": "lookup", "description": "Look a word up",
                 "input_schema": {"type": "object", "properties": {"word": {"type": "string"}}}}]  # fmt: skip

    async def run(self, call: ToolCall) -> ToolOutcome:
        return ToolOutcome(call.id, f"{call.input['word']} means hello")


async def run_turn(user, text: str, *, session_id=None, agent_slug=None, tools=None) -> tuple[runs.TurnPlan, list[dict]]:
    plan = await sync_to_async(runs.turn_begin)(user=user, text=text, agent_slug=agent_slug, session_id=session_id)
    if tools is not None:
        plan.request = dataclasses.replace(plan.request, tools=tools, max_turns=3)
    queue: asyncio.Queue = asyncio.Queue()
    await asyncio.wait_for(runs.TurnRunner(plan, listeners=[queue]).start(), 10)
    frames = []
    while not queue.empty():
        frames.append(queue.get_nowait())
    return plan, frames


def usage_of(message: Message) -> dict[str, int]:
    return {name: getattr(message, name) for name in USAGE_FIELDS}


async def test_a_websocket_turn_streams_the_answer_and_stores_it_with_its_usage(user, gpt_agent, gpt):
    gpt.script(Chunks(text=["The ", "answer ", "is ", "42."], prompt_tokens=30, completion_tokens=8, cached_tokens=10))
    ws = await connect(user)
    await ws.send_json_to({"type": "start", "message": "What is the answer?", "agent": "gpt-helper"})
    frames = await frames_until(ws, "result")
    await ws.disconnect()

    assert texts(frames) == "The answer is 42."
    result = frames[-1]
    assert result["status"] == "complete" and result["stop_reason"] == "end_turn"
    assert result["usage"] == {"input_tokens": 20, "output_tokens": 8, "cache_read_input_tokens": 10,
                               "cache_creation_input_tokens": 0}  # fmt: skip
    answer = await Message.objects.aget(session_id=frames[0]["session_id"], role="assistant")
    assert answer.status == "complete" and answer.content == [{"type": "text", "text": "The answer is 42."}]
    assert usage_of(answer) == result["usage"] and answer.model == "gpt-test-1" and answer.stop_reason == "end_turn"
    sent = gpt.requests[0].body
    assert sent["messages"] == [
        {"role": "system", "content": "You are a helpful test agent."},
        {"role": "user", "content": "What is the answer?"},
    ]
    assert sent["model"] == "gpt-test-1" and sent["max_tokens"] == 300 and sent["temperature"] == 0.4


async def test_a_tool_turn_is_stored_in_the_neutral_block_format(user, gpt_agent, gpt):
    call = FunctionCall("lookup", {"word": "salut"})
    gpt.script(Chunks(text=["Let me check."], tool_calls=[call], prompt_tokens=19, completion_tokens=9),
               Chunks(text=["It means hello."], prompt_tokens=43, completion_tokens=4))  # fmt: skip
    plan, frames = await run_turn(user, "What is salut?", agent_slug="gpt-helper", tools=LookupTools())

    assert [f["type"] for f in frames] == ["session", "text_delta", "tool_use", "tool_result", "text_delta", "result"]
    assert frames[2]["id"] == call.id and frames[2]["input"] == {"word": "salut"}
    assert frames[-1]["usage"]["input_tokens"] == 19 + 43 and frames[-1]["usage"]["output_tokens"] == 9 + 4
    stored = [m async for m in Message.objects.filter(session_id=plan.session_id).order_by("seq")]
    assert [m.content for m in stored] == [
        [{"type": "text", "text": "What is salut?"}],
        [{"type": "text", "text": "Let me check."}, {"type": "tool_use", "id": call.id, "name": "lookup", "input": {"word": "salut"}}],
        [{"type": "tool_result", "tool_use_id": call.id, "content": "salut means hello", "is_error": False}],
        [{"type": "text", "text": "It means hello."}],
    ]  # fmt: skip
    assert [usage_of(m)["input_tokens"] for m in stored if m.role == "assistant"] == [19, 43]
    assert gpt.requests[1].body["messages"][-1] == {"role": "tool", "tool_call_id": call.id, "content": "salut means hello"}


async def test_stop_mid_answer_keeps_the_partial_answer_and_closes_the_upstream_request(user, gpt_agent, gpt):
    gpt.script(Chunks(text=["Partial ", "answer ", "never ", "finished."], pause_after=2))
    ws = await connect(user)
    await ws.send_json_to({"type": "start", "message": "Go", "agent": "gpt-helper"})
    first = await frames_until(ws, "text_delta")
    session_id = first[0]["session_id"]
    await asyncio.to_thread(gpt.wait_until_paused)
    while texts(first) != "Partial answer ":
        first += await frames_until(ws, "text_delta")
    await ws.send_json_to({"type": "stop", "session_id": session_id})
    frames = first + await frames_until(ws, "result")
    gpt.release()
    await asyncio.to_thread(gpt.requests[0].finished.wait, 10)
    await ws.disconnect()

    assert frames[-1]["status"] == "stopped"
    answer = await wait_for_message_status(session_id, {"stopped"})
    assert answer.content == [{"type": "text", "text": "Partial answer "}]
    assert gpt.requests[0].disconnected, "the upstream stream must be closed on stop"


@pytest.mark.parametrize(
    ("failure", "code"),
    [(HttpError(429, "rate_limit_exceeded", "slow down"), "rate_limited"),
     (HttpError(401, "invalid_api_key", "bad key"), "upstream_auth"),
     (HttpError(503, "overloaded", "busy", type="server_error"), "overloaded")],
)  # fmt: skip
async def test_upstream_refusals_become_error_frames_with_clear_codes(user, gpt_agent, gpt, failure, code):
    gpt.script(failure)
    ws = await connect(user)
    await ws.send_json_to({"type": "start", "message": "Go", "agent": "gpt-helper"})
    frames = await frames_until(ws, "error")
    await ws.disconnect()
    assert frames[-1]["code"] == code
    answer = await wait_for_message_status(frames[0]["session_id"], {"error"})
    assert answer.error_code == code


async def test_a_stream_cut_mid_answer_keeps_the_partial_answer_as_an_error(user, gpt_agent, gpt):
    gpt.script(Chunks(text=["Half ", "an ", "answer"], drop_after=2))
    plan, frames = await run_turn(user, "Go", agent_slug="gpt-helper")
    assert frames[-1]["type"] == "error" and frames[-1]["code"] == "upstream_unavailable"
    answer = await Message.objects.aget(pk=plan.assistant_message_id)
    assert answer.status == "error" and answer.content == [{"type": "text", "text": "Half an "}]


async def test_a_session_switched_from_anthropic_to_openai_and_back_replays_its_history(user, agent, fake, gpt, gpt_config):
    """Turn 1 on Anthropic (thinking, a tool call), turn 2 on OpenAI (a tool call of its own), turn 3 on
    Anthropic again: each provider receives the whole conversation in its own format."""
    tool = ToolUse("lookup", {"word": "salut"})
    fake.script(
        Reply(thinking=["Hmm."], text=["Checking."], tool_uses=[tool], stop_reason="tool_use"),
        Reply(text=["Salut means hello."]),
    )
    plan, _ = await run_turn(user, "What is salut?", agent_slug="helper", tools=LookupTools())
    session_id = plan.session_id

    agent.llm_config = gpt_config
    await agent.asave()
    call = FunctionCall("lookup", {"word": "hola"})
    gpt.script(Chunks(tool_calls=[call]), Chunks(text=["Hola means hello too."]))
    await run_turn(user, "And hola?", session_id=session_id, tools=LookupTools())

    openai_history = gpt.requests[0].body["messages"]
    assert openai_history == [
        {"role": "system", "content": "You are a helpful test agent."},
        {"role": "user", "content": "What is salut?"},
        {"role": "assistant", "content": "Checking.", "tool_calls": [
            {"id": tool.id, "type": "function", "function": {"name": "lookup", "arguments": '{"word": "salut"}'}}]},
        {"role": "tool", "tool_call_id": tool.id, "content": "salut means hello"},
        {"role": "assistant", "content": "Salut means hello."},
        {"role": "user", "content": "And hola?"},
    ], "thinking is Anthropic's and stays out; tool use and result become tool_calls and a tool message"  # fmt: skip

    agent.llm_config = await LLMProviderConfig.objects.aget(name="Fake Claude")
    await agent.asave()
    fake.script(Reply(text=["Both mean hello."]))
    await run_turn(user, "So?", session_id=session_id)

    anthropic_history = fake.requests[-1].body["messages"]
    assert anthropic_history[4:] == [
        {"role": "user", "content": [{"type": "text", "text": "And hola?"}]},
        {"role": "assistant", "content": [{"type": "tool_use", "id": call.id, "name": "lookup", "input": {"word": "hola"}}]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": call.id, "content": "hola means hello", "is_error": False}]},
        {"role": "assistant", "content": [{"type": "text", "text": "Hola means hello too."}]},
        {"role": "user", "content": [{"type": "text", "text": "So?"}]},
    ], "OpenAI's tool call replays to Anthropic as a tool_use block"  # fmt: skip
    assert anthropic_history[1]["content"][0]["type"] == "thinking", "Anthropic gets its own thinking back"
    stored = [m async for m in Message.objects.filter(session_id=session_id, role="assistant").order_by("seq")]
    assert [m.model for m in stored] == ["claude-test-1"] * 2 + ["gpt-test-1"] * 2 + ["claude-test-1"]
