"""A user's endpoint is checked again when a turn connects to it: a config stored before the egress
policy (or whose host's address changed since it was saved) never reaches an address inside."""

from __future__ import annotations

import pytest
from asgiref.sync import sync_to_async

from agents.models import AIAgent, LLMProviderConfig
from assistant.tests.conftest import connect, frames_until, wait_for_message_status
from config.testing.listener import recording_listener

pytestmark = pytest.mark.django_db(transaction=True)


@sync_to_async
def users_agent_pointing_at(user, url: str) -> AIAgent:
    config = LLMProviderConfig.objects.create(name="mine", owner=user, base_url=url, api_key="sk-mine", model="m")
    return AIAgent.objects.create(name="Mine", slug="mine", owner=user, system_prompt_text="x", llm_config=config)


async def test_a_turn_never_connects_to_an_address_inside_for_a_users_config(user, settings):
    settings.ANTHROPIC_MAX_RETRIES = 2  # a refusal is not retried either
    with recording_listener() as listener:
        await users_agent_pointing_at(user, f"http://127.0.0.1:{listener.port}")
        ws = await connect(user)
        await ws.send_json_to({"type": "start", "agent": "mine", "message": "hello"})
        frames = await frames_until(ws, "error")
        await ws.disconnect()
        assert frames[-1]["code"] == "egress_refused" and "127.0.0.1" in frames[-1]["message"]
        answer = await wait_for_message_status(frames[0]["session_id"], {"error"})
        assert answer.error_code == "egress_refused"
        assert listener.accepted == 0


async def test_an_organization_config_reaches_its_endpoint_inside(user, agent, fake):
    ws = await connect(user)
    await ws.send_json_to({"type": "start", "agent": agent.slug, "message": "hello"})
    frames = await frames_until(ws, "result", "error")
    await ws.disconnect()
    assert frames[-1]["type"] == "result" and len(fake.requests) == 1
