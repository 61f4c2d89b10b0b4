"""The reference's code-assistance endpoints: Server-Sent Events in the legacy shape."""

from __future__ import annotations

import asyncio
import json
import re

import pytest
from asgiref.sync import sync_to_async
from django.test import AsyncClient

from agents.models import Message
from assistant.tests.conftest import token_for, wait_for_message_status
from config.testing.fake_anthropic import Reply

pytestmark = pytest.mark.django_db(transaction=True)

PATH = "/api/v1/claude-code/code-assistance"


class SseClient:
    """Posts to the endpoint as `user` (AsyncClient takes headers per request only)."""

    def __init__(self, token: str):
        self.client = AsyncClient()
        self.headers = {"Authorization": f"Bearer {token}", "Accept": "text/event-stream"}

    async def post(self, path: str, body: dict, **kwargs):
        return await self.client.post(path, body, headers=self.headers, **kwargs)


async def client_for(user) -> SseClient:
    return SseClient(await sync_to_async(token_for)(user))


async def events_of(response) -> list[dict]:
    raw = b"".join([chunk async for chunk in response.streaming_content]).decode()
    blocks = [b for b in raw.split("\n\n") if b.strip()]
    assert all(b.startswith("data: ") for b in blocks), raw
    return [json.loads(b[len("data: "):]) for b in blocks]


async def test_it_streams_events_in_the_reference_shape(user, code_agent, fake):
    fake.script(Reply(text=["def ", "add(a, b):", " return a + b"], input_tokens=20, output_tokens=6))
    client = await client_for(user)
    response = await client.post(PATH, {"prompt": "Write add()", "context": "Python 3"}, content_type="application/json")
    assert response.status_code == 200
    assert response["Content-Type"] == "text/event-stream; charset=utf-8"
    assert response["Cache-Control"] == "no-cache" and response["X-Accel-Buffering"] == "no"
    session_id = response["X-Session-ID"]
    assert re.fullmatch(r"claude-session-[0-9a-f]{12}", session_id)
    events = await events_of(response)

    for index, event in enumerate(events):
        assert {"type", "content", "icon", "chunk_index", "session_id"} <= set(event)
        assert event["chunk_index"] == index and event["session_id"] == session_id
    assert events[0]["type"] == "system_status" and events[0]["icon"] == "🧠"
    code = [e for e in events if e["type"] == "code_assistance"]
    assert "".join(e["content"] for e in code) == "def add(a, b): return a + b"
    assert all(e["icon"] == "🤖" for e in code)
    final = events[-1]
    assert final["type"] == "system_status" and final["done"] is True
    assert final["usage"]["input_tokens"] == 20 and final["usage"]["output_tokens"] == 6
    sent = fake.requests[0].body["messages"][0]["content"][0]["text"]
    assert sent.startswith("Write add()") and "<context>\nPython 3\n</context>" in sent


async def test_the_same_session_id_continues_the_conversation(user, code_agent, fake):
    fake.script(Reply(text=["One."]), Reply(text=["Two."]))
    client = await client_for(user)
    first = await client.post(PATH, {"prompt": "first", "session_id": "my-session"}, content_type="application/json")
    await events_of(first)
    second = await client.post(PATH, {"prompt": "second", "session_id": "my-session"}, content_type="application/json")
    await events_of(second)
    assert second["X-Session-ID"] == "my-session"
    assert [m["role"] for m in fake.requests[1].body["messages"]] == ["user", "assistant", "user"]


async def test_an_upstream_error_is_an_error_event_with_its_code(user, code_agent, fake):
    reply = Reply(
        text=["Some ", "text"], error_after=1, error_type="rate_limit_error", error_message="Too many",
        input_tokens=29, start_output_tokens=2, cache_read_input_tokens=7, cache_creation_input_tokens=6,
    )  # fmt: skip
    fake.script(reply)
    client = await client_for(user)
    response = await client.post(PATH, {"prompt": "hi"}, content_type="application/json")
    events = await events_of(response)
    error = events[-1]
    assert error["type"] == "error" and error["icon"] == "❌" and error["error_code"] == "rate_limited"
    assert [e["content"] for e in events if e["type"] == "code_assistance"] == ["Some "]
    message = await Message.objects.filter(role="assistant").aget()
    assert message.status == "error" and message.content == [{"type": "text", "text": "Some "}]
    assert {name: getattr(message, name) for name in reply.start_usage()} == reply.start_usage()


async def test_it_requires_authentication(db):
    response = await AsyncClient().post(PATH, {"prompt": "hi"}, content_type="application/json")
    assert response.status_code == 401
    assert response.json()["detail"]["code"] == "not_authenticated"


@pytest.mark.parametrize(
    ("body", "field"),
    [({}, "prompt"), ({"prompt": ""}, "prompt"), ({"prompt": "x" * 10_001}, "prompt"), ({"prompt": "   "}, "prompt"),
     ({"prompt": "ok", "context": "c" * 5_001}, "context"), ({"prompt": "ok", "session_id": "bad id!"}, "session_id")],
)  # fmt: skip
async def test_bad_input_is_a_400_naming_the_field(user, code_agent, body, field):
    client = await client_for(user)
    response = await client.post(PATH, body, content_type="application/json")
    assert response.status_code == 400
    assert field in response.json()["detail"]["fields"]


async def test_without_a_configured_agent_it_answers_503(user, settings, db):
    settings.CODE_ASSISTANCE_AGENT = "nobody"
    client = await client_for(user)
    response = await client.post(PATH, {"prompt": "hi"}, content_type="application/json")
    assert response.status_code == 503 and response.json()["detail"]["code"] == "agent_unavailable"


async def test_health_says_whether_the_model_is_configured(code_agent, settings):
    response = await AsyncClient().get("/api/v1/claude-code/health")
    assert response.status_code == 200
    assert response.json() == {"status": "ok", "configured": True, "agent": "helper", "model": "claude-test-1"}
    settings.CODE_ASSISTANCE_AGENT = "nobody"
    response = await AsyncClient().get("/api/v1/claude-code/health")
    assert response.json()["configured"] is False and response.json()["status"] == "not_configured"


async def test_a_second_request_while_the_session_answers_is_a_409(user, code_agent, fake):
    fake.script(Reply(text=["a", "b"], pause_after=1))
    client = await client_for(user)
    first = await client.post(PATH, {"prompt": "hi", "session_id": "busy"}, content_type="application/json")
    stream = first.streaming_content.__aiter__()
    await stream.__anext__()
    await asyncio.to_thread(fake.wait_until_paused)
    second = await client.post(PATH, {"prompt": "again", "session_id": "busy"}, content_type="application/json")
    assert second.status_code == 409 and second.json()["detail"]["code"] == "turn_in_progress"
    fake.release()
    async for _ in stream:
        pass
    await wait_for_message_status((await Message.objects.aget(role="assistant")).session_id, {"complete"})


async def test_line_separators_in_an_answer_stay_inside_their_event(user, code_agent, fake):
    fake.script(Reply(text=["one\u2028two", "\u2029three\x85"]))
    response = await (await client_for(user)).post(PATH, {"prompt": "Hi"}, content_type="application/json")
    raw = b"".join([chunk async for chunk in response.streaming_content]).decode()
    # A reader that splits lines as Python's str.splitlines does still sees one `data:` line per event.
    lines = [line for line in raw.splitlines() if line]
    assert all(line.startswith("data: ") for line in lines), lines
    code = [json.loads(line[len("data: "):]) for line in lines]
    assert "".join(e["content"] for e in code if e["type"] == "code_assistance") == "one\u2028two\u2029three\x85"
