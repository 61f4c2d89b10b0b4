"""The run API (`POST /api/v1/agents/{slug}/run`), its resume stream and its stop, in-process on
Django's ASGI handler (the AsyncClient), with the fake Messages API."""

from __future__ import annotations

import asyncio
import json
from decimal import Decimal

import pytest
from asgiref.sync import sync_to_async
from django.test import AsyncClient

from agents.models import AIAgent, Message, UserAgentSession
from assistant import runs
from assistant.tests.conftest import token_for, wait_for_message_status
from assistant.tests.lookup_tool import with_lookup_tool
from config.asgi import STREAMING_HTTP_PATTERN
from config.testing.fake_anthropic import Reply, ToolUse
from usage.services import usage_add

pytestmark = pytest.mark.django_db(transaction=True)

RUN = "/api/v1/agents/helper/run"


@pytest.fixture
def lookup_tool(monkeypatch):
    monkeypatch.setattr(runs, "turn_begin", with_lookup_tool(runs.turn_begin))


class Client:
    def __init__(self, token: str):
        self.client = AsyncClient()
        self.headers = {"Authorization": f"Bearer {token}"}

    async def run(self, body: dict, *, path: str = RUN, protocol: str | None = None):
        url = f"{path}?protocol={protocol}" if protocol else path
        return await self.client.post(url, body, content_type="application/json", headers=self.headers)

    async def events(self, session_id: int, *, after: int | None = None, last_event_id: str | None = None):
        headers = dict(self.headers)
        if last_event_id is not None:
            headers["Last-Event-ID"] = last_event_id
        query = f"?after={after}" if after is not None else ""
        return await self.client.get(f"/api/v1/sessions/{session_id}/events{query}", headers=headers)

    async def stop(self, session_id: int):
        return await self.client.post(f"/api/v1/sessions/{session_id}/stop", headers=self.headers)


async def client_for(user) -> Client:
    return Client(await sync_to_async(token_for)(user))


async def body_of(response) -> str:
    return b"".join([chunk async for chunk in response.streaming_content]).decode()


def sse_events(raw: str) -> list[tuple[str, dict]]:
    """(id, data) of each event; comments (keep-alives) skipped."""
    events = []
    for block in raw.split("\n\n"):
        lines = [line for line in block.split("\n") if line and not line.startswith(":")]
        if not lines:
            continue
        fields = dict(line.split(": ", 1) for line in lines)
        assert set(fields) == {"id", "data"}, block
        events.append((fields["id"], json.loads(fields["data"])))
    return events


def tool_script(fake) -> ToolUse:
    tool = ToolUse("lookup", {"word": "salut"})
    fake.script(
        Reply(text=["Let me ", "check."], tool_uses=[tool], stop_reason="tool_use", input_tokens=20, output_tokens=7),
        Reply(text=["It means ", "hello."], input_tokens=40, output_tokens=5),
    )
    return tool


async def test_it_streams_the_platform_events_with_their_seq_as_event_id(user, agent, fake, lookup_tool):
    tool = tool_script(fake)
    client = await client_for(user)
    response = await client.run({"message": "What is salut?"})
    assert response.status_code == 200
    assert response["Content-Type"] == "text/event-stream; charset=utf-8"
    assert response["Cache-Control"] == "no-cache" and response["X-Accel-Buffering"] == "no"
    events = sse_events(await body_of(response))

    assert all(event_id == str(data["seq"]) for event_id, data in events)
    frames = [data for _, data in events]
    session_id = frames[0]["session_id"]
    assert response["X-Session-ID"] == str(session_id)
    assert [f["type"] for f in frames if f["type"] != "text_delta"] == ["session", "tool_use", "tool_result", "result"]
    assert frames[0]["agent"] == "helper" and frames[0]["user_message"]["text"] == "What is salut?"
    tool_use = next(f for f in frames if f["type"] == "tool_use")
    assert tool_use["id"] == tool.id and tool_use["name"] == "lookup" and tool_use["input"] == {"word": "salut"}
    assert next(f for f in frames if f["type"] == "tool_result")["output"] == "salut means hello"
    assert "".join(f["text"] for f in frames if f["type"] == "text_delta") == "Let me check.It means hello."
    assert frames[-1]["status"] == "complete" and frames[-1]["usage"]["input_tokens"] == 60
    assert frames[-1]["usage"]["output_tokens"] == 12 and frames[-1]["turns"] == 2
    session = await UserAgentSession.objects.select_related("agent").aget(pk=session_id)
    assert session.owner_id == user.pk and session.agent.slug == "helper"


async def test_a_session_id_continues_that_session(user, agent, fake):
    fake.script(Reply(text=["One."]), Reply(text=["Two."]))
    client = await client_for(user)
    first = await client.run({"message": "first", "custom_properties": {}})
    session_id = sse_events(await body_of(first))[0][1]["session_id"]
    second = await client.run({"message": "second", "session_id": session_id})
    frames = [data for _, data in sse_events(await body_of(second))]
    assert {f["session_id"] for f in frames} == {session_id}
    assert [m["role"] for m in fake.requests[1].body["messages"]] == ["user", "assistant", "user"]
    assert await UserAgentSession.objects.filter(owner=user).acount() == 1


async def test_another_users_session_is_a_404_and_runs_nothing(user, other_user, agent, fake):
    theirs = await UserAgentSession.objects.acreate(owner=other_user, agent=agent, title="Bob's")
    client = await client_for(user)
    response = await client.run({"message": "let me in", "session_id": theirs.pk})
    assert response.status_code == 404 and response.json()["detail"]["code"] == "not_found"
    assert await Message.objects.filter(session=theirs).acount() == 0 and fake.requests == []
    assert (await client.events(theirs.pk)).status_code == 404
    assert (await client.stop(theirs.pk)).status_code == 404


async def test_a_session_of_another_agent_is_a_404(user, agent, fake):
    other = await AIAgent.objects.acreate(name="Other", slug="other", system_prompt_text="x", llm_config_id=agent.llm_config_id)
    session = await UserAgentSession.objects.acreate(owner=user, agent=other, title="with other")
    client = await client_for(user)
    response = await client.run({"message": "hi", "session_id": session.pk})
    assert response.status_code == 404 and fake.requests == []


async def test_an_unknown_agent_is_a_404(user, agent):
    client = await client_for(user)
    response = await client.run({"message": "hi"}, path="/api/v1/agents/nobody/run")
    assert response.status_code == 404 and response.json()["detail"]["code"] == "not_found"


@pytest.mark.parametrize("protocol", ["v3", "SSE", "v5 ", "text"])
async def test_an_unknown_protocol_is_a_400_naming_it(user, agent, fake, protocol):
    client = await client_for(user)
    response = await client.run({"message": "hi"}, protocol=protocol)
    assert response.status_code == 400
    assert "protocol" in response.json()["detail"]["fields"]
    assert fake.requests == [] and await Message.objects.acount() == 0


@pytest.mark.parametrize(
    ("body", "field"),
    [({}, "message"), ({"message": ""}, "message"), ({"message": "  "}, "message"), ({"message": 5}, "message"),
     ({"message": "hi", "session_id": "x"}, "session_id"), ({"message": "hi", "session_id": 0}, "session_id"),
     ({"message": "hi", "session_id": 2**63}, "session_id"), ({"message": "hi", "custom_properties": []}, "custom_properties"),
     ({"message": "hi", "session_id": 1, "custom_properties": {}}, "custom_properties")],
)  # fmt: skip
async def test_bad_input_is_a_400_naming_the_field(user, agent, body, field):
    client = await client_for(user)
    response = await client.run(body)
    assert response.status_code == 400
    assert field in response.json()["detail"]["fields"]


async def test_custom_properties_failing_the_agents_schema_are_a_400(user, agent, fake):
    agent.custom_properties_schema = {"type": "object", "properties": {"lang": {"type": "string"}}, "required": ["lang"]}
    await agent.asave()
    client = await client_for(user)
    response = await client.run({"message": "hi", "custom_properties": {"lang": 3}})
    assert response.status_code == 400 and "custom_properties" in response.json()["detail"]["fields"]
    assert fake.requests == []


async def test_a_second_run_while_one_is_running_is_a_409(user, agent, fake):
    fake.script(Reply(text=["slow ", "answer"], pause_after=1))
    client = await client_for(user)
    first = await client.run({"message": "first"})
    stream = first.streaming_content.__aiter__()
    session_id = json.loads((await anext(stream)).decode().split("data: ", 1)[1])["session_id"]
    second = await client.run({"message": "second", "session_id": session_id})
    assert second.status_code == 409 and second.json()["detail"]["code"] == "turn_in_progress"
    await asyncio.to_thread(fake.wait_until_paused)
    fake.release()
    rest = "".join([chunk.decode() async for chunk in stream])
    assert '"type": "result"' in rest


async def test_too_many_running_turns_are_a_429(user, agent, fake, settings):
    settings.ASSISTANT_MAX_CONCURRENT_TURNS_PER_USER = 1
    fake.script(Reply(text=["slow ", "answer"], pause_after=1))
    client = await client_for(user)
    first = await client.run({"message": "first"})
    stream = first.streaming_content.__aiter__()
    await anext(stream)
    second = await client.run({"message": "second"})
    assert second.status_code == 429 and second.json()["detail"]["code"] == "too_many_turns"
    await asyncio.to_thread(fake.wait_until_paused)
    fake.release()
    assert '"type": "result"' in "".join([chunk.decode() async for chunk in stream])


async def test_a_used_up_budget_is_a_429_before_the_model_is_reached(user, agent, fake, settings):
    settings.BUDGET_USER_MONTHLY_TOKENS = 100
    await sync_to_async(usage_add)(user_id=user.pk, usage={"input_tokens": 100}, cost=Decimal("0"))
    refused = await (await client_for(user)).run({"message": "one more"}, protocol="v5")
    assert refused.status_code == 429 and refused.json()["detail"]["code"] == "budget_exceeded"
    assert "100 of 100 tokens" in refused.json()["detail"]["message"]
    assert fake.requests == [] and not await Message.objects.filter(session__owner=user).aexists()


async def test_a_client_that_disconnects_leaves_the_turn_running_and_resumes_by_last_event_id(user, agent, fake):
    chunks = ["Before ", "the ", "hang-up, ", "after ", "it."]
    fake.script(Reply(text=chunks, pause_after=2))
    client = await client_for(user)
    response = await client.run({"message": "Keep talking"})
    stream = response.streaming_content.__aiter__()
    received = ""
    while "hang-up" not in received and '"Before "' not in received:
        received += (await anext(stream)).decode()
    await stream.aclose()  # the client leaves (Django closes the iterator the same way)
    seen = sse_events(received)
    session_id, last_id = seen[0][1]["session_id"], seen[-1][0]

    await asyncio.to_thread(fake.wait_until_paused)
    await asyncio.sleep(0.2)
    message = await Message.objects.filter(session_id=session_id, role="assistant").alast()
    assert message.status == "streaming", "the turn goes on without its client"
    resumed = await client.events(session_id, last_event_id=last_id)
    assert resumed.status_code == 200 and resumed["Content-Type"] == "text/event-stream; charset=utf-8"
    fake.release()
    rest = sse_events(await body_of(resumed))

    frames = [data for _, data in seen + rest]
    seqs = [f["seq"] for f in frames]
    assert seqs == list(range(seqs[0], seqs[0] + len(seqs))), "no gap and no duplicate"
    assert "".join(f["text"] for f in frames if f["type"] == "text_delta") == "".join(chunks)
    assert rest[-1][1]["type"] == "result" and rest[-1][1]["status"] == "complete"
    stored = await wait_for_message_status(session_id, {"complete"})
    assert stored.content == [{"type": "text", "text": "".join(chunks)}]


async def test_after_the_turn_the_events_endpoint_replays_after_a_seq_and_ends(user, agent, fake):
    fake.script(Reply(text=["Done ", "already."]))
    client = await client_for(user)
    frames = [data for _, data in sse_events(await body_of(await client.run({"message": "go"})))]
    session_id = frames[0]["session_id"]
    replay = [data for _, data in sse_events(await body_of(await client.events(session_id, after=frames[1]["seq"])))]
    assert replay == frames[2:]
    latest = [data for _, data in sse_events(await body_of(await client.events(session_id)))]
    assert latest == frames  # no position: the latest turn from its start
    assert sse_events(await body_of(await client.events(session_id, after=frames[-1]["seq"]))) == []


@pytest.mark.parametrize(("after", "header"), [("x", None), ("-1", None), ("²", None), (None, "abc"), (str(2**64), None)])
async def test_a_bad_resume_point_is_a_400(user, agent, after, header):
    session = await UserAgentSession.objects.acreate(owner=user, agent=agent, title="t")
    client = await client_for(user)
    query = f"?after={after}" if after is not None else ""
    headers = {**client.headers, **({"Last-Event-ID": header} if header else {})}
    response = await client.client.get(f"/api/v1/sessions/{session.pk}/events{query}", headers=headers)
    assert response.status_code == 400


async def test_stop_ends_the_turn_as_stopped_keeping_the_partial_answer(user, agent, fake):
    fake.script(Reply(text=["kept ", "words ", "lost"], pause_after=2))
    client = await client_for(user)
    response = await client.run({"message": "go"}, protocol="v5")
    stream = response.streaming_content.__aiter__()
    received = ""
    while "kept" not in received:
        received += (await anext(stream)).decode()
    session_id = int(response["X-Session-ID"])
    await asyncio.to_thread(fake.wait_until_paused)
    stopped = await client.stop(session_id)
    assert stopped.status_code == 202 and stopped.json() == {"session_id": session_id, "status": "stopping"}
    received += "".join([chunk.decode() async for chunk in stream])
    fake.release()
    assert '"type": "abort"' in received and received.endswith("data: [DONE]\n\n")
    message = await wait_for_message_status(session_id, {"stopped"})
    assert message.content == [{"type": "text", "text": "kept words "}]
    again = await client.stop(session_id)
    assert again.status_code == 409 and again.json()["detail"]["code"] == "no_turn"


async def test_the_v5_and_v4_streams_carry_their_headers(user, agent, fake):
    fake.script(Reply(text=["Hi."]), Reply(text=["Hi."]))
    client = await client_for(user)
    v5 = await client.run({"message": "hi"}, protocol="v5")
    assert v5["x-vercel-ai-ui-message-stream"] == "v1" and v5["Content-Type"] == "text/event-stream; charset=utf-8"
    body = await body_of(v5)
    assert body.startswith('data: {"type": "start"') and body.endswith("data: [DONE]\n\n")
    v4 = await client.run({"message": "hi"}, protocol="v4")
    assert v4["x-vercel-ai-data-stream"] == "v1" and v4["Content-Type"] == "text/plain; charset=utf-8"
    lines = (await body_of(v4)).splitlines()
    assert lines[0] == 'f:{"messageId": "session-%s-1"}' % v4["X-Session-ID"]
    assert '0:"Hi."' in lines and lines[-1].startswith('d:{"finishReason": "stop"')


def test_the_run_events_and_stop_paths_are_served_on_the_asgi_path():
    for path in ["/api/v1/agents/helper/run", "/api/v1/sessions/12/events", "/api/v1/sessions/12/stop"]:
        assert STREAMING_HTTP_PATTERN.fullmatch(path)
    for path in ["/api/v1/agents/helper", "/api/v1/sessions/12/messages", "/api/v1/agents/a/b/run"]:
        assert not STREAMING_HTTP_PATTERN.fullmatch(path)


async def test_on_a_real_server_a_run_client_that_hangs_up_leaves_the_turn_to_finish(tmp_path):
    """daphne notices the hang-up and Django cancels the response: the turn must not notice."""
    import http.client
    from urllib.parse import urlparse

    from assistant.tests.surfaces.test_live_servers import seed_over_api
    from config.testing.fake_anthropic import fake_anthropic_server
    from config.testing.processes import database_url_for_children, http_json, running_server

    with fake_anthropic_server() as fake:
        env = {"DATABASE_URL": database_url_for_children(tmp_path), "ANTHROPIC_MAX_RETRIES": "0",
               "OUTBOUND_ALLOWED_HOSTS": "127.0.0.1"}  # fmt: skip
        with running_server(env) as base:
            token, slug = await asyncio.to_thread(seed_over_api, base, fake.base_url)
            fake.script(Reply(text=["first ", "second ", "third"], pause_after=1))

            def read_until_the_first_words_then_hang_up() -> tuple[int, str]:
                host = urlparse(base)
                connection = http.client.HTTPConnection(host.hostname, host.port, timeout=15)
                connection.request("POST", f"/api/v1/agents/{slug}/run", json.dumps({"message": "hello"}),
                                   {"Authorization": f"Bearer {token}", "Content-Type": "application/json"})  # fmt: skip
                response = connection.getresponse()
                assert response.status == 200, response.read()
                last_id = None
                while True:
                    line = response.readline().decode()
                    if line.startswith("id: "):
                        last_id = line[len("id: "):].strip()
                    if line.startswith("data: ") and json.loads(line[len("data: "):])["type"] == "text_delta":
                        break
                response.close()
                connection.close()
                return int(response.getheader("X-Session-ID")), last_id

            session_id, last_id = await asyncio.to_thread(read_until_the_first_words_then_hang_up)
            await asyncio.to_thread(fake.wait_until_paused)
            await asyncio.sleep(0.5)  # time for the server to notice the hang-up
            fake.release()

            def stored_answer() -> dict:
                status, page = http_json("GET", f"{base}/api/v1/sessions/{session_id}/messages", None, token)
                assert status == 200
                return page["results"][-1]

            for _ in range(100):
                if (await asyncio.to_thread(stored_answer))["status"] != "streaming":
                    break
                await asyncio.sleep(0.1)
            answer = await asyncio.to_thread(stored_answer)
            assert answer["status"] == "complete"
            assert answer["content"] == [{"type": "text", "text": "first second third"}]

            def resume() -> list[dict]:
                host = urlparse(base)
                connection = http.client.HTTPConnection(host.hostname, host.port, timeout=15)
                connection.request("GET", f"/api/v1/sessions/{session_id}/events",
                                   headers={"Authorization": f"Bearer {token}", "Last-Event-ID": last_id})  # fmt: skip
                response = connection.getresponse()
                assert response.status == 200
                body = response.read().decode()
                connection.close()
                return [data for _, data in sse_events(body)]

            rest = await asyncio.to_thread(resume)
            assert rest[0]["seq"] == int(last_id) + 1 and rest[-1]["type"] == "result"
            assert "".join(f["text"] for f in rest if f["type"] == "text_delta") == "second third"


async def test_a_retried_post_with_last_event_id_resumes_instead_of_running_again(user, agent, fake):
    fake.script(Reply(text=["Only ", "once."]))
    client = await client_for(user)
    frames = [data for _, data in sse_events(await body_of(await client.run({"message": "go"})))]
    session_id = frames[0]["session_id"]
    headers = {**client.headers, "Last-Event-ID": str(frames[1]["seq"])}
    retried = await client.client.post(RUN, {"message": "go", "session_id": session_id}, content_type="application/json", headers=headers)
    assert retried.status_code == 200
    assert [data for _, data in sse_events(await body_of(retried))] == frames[2:]
    assert len(fake.requests) == 1 and await Message.objects.filter(session_id=session_id).acount() == 2
    without_session = await client.client.post(RUN, {"message": "go"}, content_type="application/json", headers=headers)
    assert without_session.status_code == 400 and "Last-Event-ID" in without_session.json()["detail"]["fields"]


# --- the AI SDK's chat request (useChat's DefaultChatTransport) -----------------------------------------


def ui_message(role: str, *texts: str, id: str = "m") -> dict:
    return {"id": id, "role": role, "parts": [{"type": "step-start"}, *({"type": "text", "text": t} for t in texts)]}


def v5_text(raw: str) -> str:
    chunks = [json.loads(line[6:]) for line in raw.splitlines() if line.startswith("data: {")]
    return "".join(c["delta"] for c in chunks if c["type"] == "text-delta")


async def test_the_ai_sdks_chat_request_runs_the_last_user_message_and_answers_the_v5_stream(user, agent, fake):
    fake.script(Reply(text=["Hello, Alice."]), Reply(text=["Blue."]))
    client = await client_for(user)
    first = await client.run({"id": "chat-1", "messages": [ui_message("user", "Hi, I'm", "Alice")], "trigger": "submit-message"})
    assert first.status_code == 200 and first["x-vercel-ai-ui-message-stream"] == "v1"  # v5 without ?protocol
    assert v5_text(await body_of(first)) == "Hello, Alice."
    session_id = int(first["X-Session-ID"])

    history = [ui_message("user", "Hi, I'm", "Alice", id="u1"), ui_message("assistant", "Hello, Alice.", id="a1")]
    second = await client.run({"id": "chat-1", "messages": [*history, ui_message("user", "Favourite colour?")],
                               "trigger": "submit-message", "messageId": None})  # fmt: skip
    assert second.status_code == 200 and int(second["X-Session-ID"]) == session_id
    assert v5_text(await body_of(second)) == "Blue."

    assert await UserAgentSession.objects.filter(owner=user).acount() == 1
    stored = [(m.role, m.content[0]["text"]) async for m in Message.objects.filter(session_id=session_id).order_by("seq")]
    assert stored == [("user", "Hi, I'm\n\nAlice"), ("assistant", "Hello, Alice."), ("user", "Favourite colour?"),
                      ("assistant", "Blue.")]  # fmt: skip
    assert [m["role"] for m in fake.requests[1].body["messages"]] == ["user", "assistant", "user"]


async def test_another_chat_id_another_user_or_agent_is_another_session(user, other_user, agent, fake):
    await AIAgent.objects.acreate(name="Other", slug="other", system_prompt_text="x", llm_config_id=agent.llm_config_id,
                                  is_active=True)  # fmt: skip
    body = {"id": "chat-1", "messages": [ui_message("user", "Hi")], "trigger": "submit-message"}
    mine = await (await client_for(user)).run(body)
    other_chat = await (await client_for(user)).run({**body, "id": "chat-2"})
    theirs = await (await client_for(other_user)).run(body)
    other_agent = await (await client_for(user)).run(body, path="/api/v1/agents/other/run")
    ids = {r["X-Session-ID"] for r in (mine, other_chat, theirs, other_agent)}
    assert len(ids) == 4
    for response in (mine, other_chat, theirs, other_agent):
        await body_of(response)


async def test_a_chat_begun_elsewhere_brings_its_earlier_messages_into_the_new_session(user, agent, fake):
    client = await client_for(user)
    messages = [ui_message("user", "Earlier"), ui_message("assistant", "Noted."), ui_message("user", "Now")]
    response = await client.run({"id": "chat-from-elsewhere", "messages": messages, "trigger": "submit-message"},
                                protocol="sse")  # fmt: skip
    assert response["Content-Type"] == "text/event-stream; charset=utf-8"
    await body_of(response)
    assert [m["role"] for m in fake.requests[0].body["messages"]] == ["user", "assistant", "user"]
    assert fake.requests[0].body["messages"][-1]["content"] == [{"type": "text", "text": "Now"}]


@pytest.mark.parametrize(
    ("body", "field"),
    [({"messages": [ui_message("user", "hi")]}, "id"),
     ({"id": "", "messages": [ui_message("user", "hi")]}, "id"),
     ({"id": "x" * 129, "messages": [ui_message("user", "hi")]}, "id"),
     ({"id": "c", "messages": []}, "messages"),
     ({"id": "c", "messages": "hi"}, "messages"),
     ({"id": "c", "messages": [{"role": "user", "content": "hi"}]}, "messages"),
     ({"id": "c", "messages": [ui_message("assistant", "hi")]}, "messages"),
     ({"id": "c", "messages": [ui_message("user", " ")]}, "messages"),
     ({"id": "c", "messages": [{"id": "m", "role": "user", "parts": [{"type": "text", "text": "see"},
                                {"type": "file", "mediaType": "image/png", "url": "data:image/png;base64,AA=="}]}]}, "messages"),
     ({"id": "c", "messages": [ui_message("user", "hi")], "trigger": "resume"}, "trigger")],
)  # fmt: skip
async def test_a_bad_chat_request_is_a_400_naming_the_field(user, agent, fake, body, field):
    response = await (await client_for(user)).run(body)
    assert response.status_code == 400, response
    assert field in response.json()["detail"]["fields"]
    assert fake.requests == [] and await Message.objects.acount() == 0


async def test_regenerate_runs_the_last_user_message_again_in_the_chats_session(user, agent, fake):
    fake.script(Reply(text=["One."]), Reply(text=["Another."]))
    client = await client_for(user)
    first = await client.run({"id": "chat-r", "messages": [ui_message("user", "Pick", id="u1")], "trigger": "submit-message"})
    await body_of(first)
    again = await client.run({"id": "chat-r", "messages": [ui_message("user", "Pick", id="u1")],
                              "trigger": "regenerate-message", "messageId": "a1"})  # fmt: skip
    assert v5_text(await body_of(again)) == "Another."
    assert again["X-Session-ID"] == first["X-Session-ID"]
    assert [m["role"] for m in fake.requests[1].body["messages"]] == ["user", "assistant", "user"]
