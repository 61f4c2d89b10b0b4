"""A turn whose model asks for tools: events relayed in order, every step stored as a message."""

from __future__ import annotations

import asyncio
import dataclasses

import pytest
from asgiref.sync import sync_to_async

from agents.models import Message
from assistant import runs
from assistant.engine import ToolCall, ToolOutcome
from config.testing.fake_anthropic import Reply, ToolUse

pytestmark = pytest.mark.django_db(transaction=True)


class LookupTools:
    def definitions(self):
        return [{"name": "lookup", "description": "Look a word up", "input_schema": {"type": "object"}}]

    async def run(self, call: ToolCall) -> ToolOutcome:
        return ToolOutcome(call.id, f"{call.input['word']} means hello")


async def test_tool_calls_are_relayed_and_stored_step_by_step(user, agent, fake):
    tool = ToolUse("lookup", {"word": "salut"})
    fake.script(Reply(text=["Let me check."], tool_uses=[tool], stop_reason="tool_use"), Reply(text=["It means hello."]))
    plan = await sync_to_async(runs.turn_begin)(user=user, text="What is salut?", agent_slug="helper")
    plan.request = dataclasses.replace(plan.request, tools=LookupTools(), max_turns=3)
    queue: asyncio.Queue = asyncio.Queue()
    runner = runs.TurnRunner(plan, listeners=[queue])
    await asyncio.wait_for(runner.start(), 10)

    frames = []
    while not queue.empty():
        frames.append(queue.get_nowait())
    kinds = [f["type"] for f in frames]
    assert kinds == ["session", "text_delta", "tool_use", "tool_result", "text_delta", "result"]
    assert frames[2] == {"type": "tool_use", "session_id": plan.session_id, "seq": frames[2]["seq"],
                         "id": tool.id, "name": "lookup", "input": {"word": "salut"}}  # fmt: skip
    assert frames[3]["output"] == "salut means hello" and frames[3]["is_error"] is False
    assert frames[-1]["turns"] == 2 and frames[-1]["status"] == "complete"

    stored = [m async for m in Message.objects.filter(session_id=plan.session_id).order_by("seq")]
    assert [(m.role, m.status) for m in stored] == [
        ("user", "complete"), ("assistant", "complete"), ("user", "complete"), ("assistant", "complete")
    ]
    assert stored[1].content[1] == {"type": "tool_use", "id": tool.id, "name": "lookup", "input": {"word": "salut"}}
    assert stored[2].content == [{"type": "tool_result", "tool_use_id": tool.id, "content": "salut means hello", "is_error": False}]
    assert stored[3].content == [{"type": "text", "text": "It means hello."}]
    assert fake.requests[1].body["messages"][-1]["content"][0]["type"] == "tool_result"


def usage_of(message: Message) -> dict[str, int]:
    names = ("input_tokens", "output_tokens", "cache_read_input_tokens", "cache_creation_input_tokens")
    return {name: getattr(message, name) for name in names}


async def test_a_turn_stopped_after_a_tool_call_keeps_each_calls_usage_and_reports_their_sum(user, agent, fake):
    tool = ToolUse("lookup", {"word": "salut"})
    first = Reply(text=["Let me check."], tool_uses=[tool], stop_reason="tool_use", input_tokens=19, output_tokens=9,
                  cache_creation_input_tokens=4)  # fmt: skip
    second = Reply(text=["It ", "means ", "hello."], pause_after=1, input_tokens=43, start_output_tokens=2,
                   cache_read_input_tokens=17)  # fmt: skip
    fake.script(first, second)
    plan = await sync_to_async(runs.turn_begin)(user=user, text="What is salut?", agent_slug="helper")
    plan.request = dataclasses.replace(plan.request, tools=LookupTools(), max_turns=3)
    queue: asyncio.Queue = asyncio.Queue()
    runner = runs.TurnRunner(plan, listeners=[queue])
    task = runner.start()
    await asyncio.to_thread(fake.wait_until_paused)
    frames = []
    while not [f for f in frames if f["type"] == "text_delta" and f["text"] == "It "]:  # the second call's words
        frames.append(await asyncio.wait_for(queue.get(), 10))
    runner.request_stop()
    await asyncio.wait_for(task, 10)
    fake.release()
    while not queue.empty():
        frames.append(queue.get_nowait())

    stored = [m async for m in Message.objects.filter(session_id=plan.session_id, role="assistant").order_by("seq")]
    assert [m.status for m in stored] == ["complete", "stopped"]
    first_usage = {**first.start_usage(), "output_tokens": first.output_tokens}
    assert usage_of(stored[0]) == first_usage
    assert usage_of(stored[1]) == second.start_usage() and stored[1].content == [{"type": "text", "text": "It "}]
    result = frames[-1]
    assert result["type"] == "result" and result["status"] == "stopped" and result["turns"] == 2  # model calls begun
    assert result["usage"] == {name: first_usage[name] + second.start_usage()[name] for name in first_usage}
