"""Fixtures for the assistant: the fake Messages API and an agent whose LLM config points at it."""

from __future__ import annotations

import asyncio
import time

import pytest
from asgiref.sync import sync_to_async
from channels.testing import WebsocketCommunicator

from accounts.services import token_pair_issue
from agents.models import AIAgent, LLMProviderConfig, Message
from config.asgi import application
from config.testing.fake_anthropic import fake_anthropic_server

ORIGIN = (b"origin", b"http://localhost")


@pytest.fixture
def fake(settings):
    settings.ANTHROPIC_MAX_RETRIES = 0
    with fake_anthropic_server() as server:
        yield server


@pytest.fixture
def agent(db, fake):
    config = LLMProviderConfig.objects.create(
        name="Fake Claude", provider="anthropic", model="claude-test-1", base_url=fake.base_url,
        api_key="sk-test-key", max_tokens=512, temperature=0.2,
    )  # fmt: skip
    return AIAgent.objects.create(
        name="Helper", slug="helper", system_prompt_text="You are a helpful test agent.", llm_config=config, is_active=True
    )


@pytest.fixture
def code_agent(agent, settings):
    settings.CODE_ASSISTANCE_AGENT = agent.slug
    return agent


def token_for(user) -> str:
    return token_pair_issue(user=user)["access_token"]


async def connect(user=None, *, token: str | None = None, origin=ORIGIN) -> WebsocketCommunicator:
    token = token if token is not None else (await sync_to_async(token_for)(user) if user else None)
    communicator = WebsocketCommunicator(
        application, "/ws/assistant/", headers=[origin, (b"host", b"localhost")],
        subprotocols=["jwt", token] if token else None,
    )  # fmt: skip
    connected, subprotocol = await communicator.connect(timeout=5)
    assert connected
    return communicator


async def frames_until(communicator, *types: str, timeout: float = 10) -> list[dict]:
    """Frames up to and including the first turn event (seq set) of one of `types`."""
    frames = []
    while True:
        frame = await communicator.receive_json_from(timeout)
        frames.append(frame)
        if frame["type"] in types and frame.get("seq") is not None:
            return frames


async def wait_for_message_status(session_id: int, statuses: set[str], timeout: float = 10) -> Message:
    deadline = time.monotonic() + timeout
    while True:
        message = await Message.objects.filter(session_id=session_id, role="assistant").order_by("-seq").afirst()
        if message and message.status in statuses:
            return message
        if time.monotonic() > deadline:
            raise AssertionError(f"assistant message never reached {statuses}: {message and message.status}")
        await asyncio.sleep(0.02)


def texts(frames: list[dict]) -> str:
    return "".join(f["text"] for f in frames if f["type"] == "text_delta")
