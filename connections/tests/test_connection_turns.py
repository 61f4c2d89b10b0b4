"""Turns of an agent whose integration needs each user's connection: the user's own token reaches the
MCP server (never another user's, even through the warm pool; never the model), tokens about to expire
are refreshed first, and a user without a usable connection is refused before the model with
`connection_required` on every surface."""

from __future__ import annotations

import json
from datetime import timedelta
from http.server import BaseHTTPRequestHandler

import pytest
from asgiref.sync import sync_to_async
from django.utils import timezone

from accounts.services import api_key_create
from agents.models import Integration
from assistant import runs
from assistant.tests.conftest import agent, code_agent, connect, fake  # noqa: F401 - fixtures
from assistant.tests.runs.test_turn_agent_tools import by_type, eventually, start
from assistant.tests.surfaces.test_run_api import client_for
from assistant.tests.surfaces.test_sse import PATH as CODE_ASSISTANCE
from assistant.tests.surfaces.test_sse import client_for as sse_client_for
from assistant.tools.mcp_pool import mcp_pool
from config.asgi import application
from config.testing.asgi import asgi_request
from config.testing.fake_anthropic import Reply, ToolUse
from connections.models import Connection
from config.testing.servers import serve_http
from connections.tests.conftest import api_for, connect_oauth


class _Recorder(BaseHTTPRequestHandler):
    def do_POST(self) -> None:
        self.server.headers.append(dict(self.headers))
        self.send_response(404)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args) -> None:
        pass

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def notes(agent, auth_server) -> Integration:  # noqa: F811
    integration = Integration.objects.create(name="notes", provider="custom", auth="oauth",
                                             mcp_server={"type": "http", "url": f"{auth_server.base}/mcp"})  # fmt: skip
    agent.integrations.add(integration)
    return integration


async def turn(user, fake) -> list[dict]:  # noqa: F811
    """One websocket turn in which the model calls the server's whoami; its frames."""
    fake.script(Reply(tool_uses=[ToolUse("notes__whoami", {})], stop_reason="tool_use"), Reply(text=["Done."]))
    ws = await connect(user)
    await start(ws, "Who am I there?")
    frames = [await ws.receive_json_from(30)]
    while frames[-1]["type"] not in {"result", "error"}:  # a refusal's error frame has no seq
        frames.append(await ws.receive_json_from(30))
    await ws.disconnect()
    if frames[-1]["type"] == "result":
        assert await eventually(lambda: runs.running_turn(frames[0]["session_id"]) is None)
    return frames


async def whoami(user, fake) -> str:  # noqa: F811
    frames = await turn(user, fake)
    [result] = by_type(frames, "tool_result")
    assert result["is_error"] is False, frames
    return result["output"]


async def token_of(user, integration) -> Connection:
    return await Connection.objects.aget(user=user, integration=integration)


async def test_a_turn_reaches_the_server_with_the_users_own_token(user, notes, fake, auth_server):  # noqa: F811
    await sync_to_async(connect_oauth)(user, notes, login="alice")
    row = await token_of(user, notes)

    assert await whoami(user, fake) == "alice"

    assert {token for token, _ in auth_server.seen[-3:]} == {row.access_token}
    sent_to_model = json.dumps([request.body for request in fake.requests])
    assert row.access_token not in sent_to_model and row.refresh_token not in sent_to_model


async def test_another_user_never_gets_the_first_users_connection_even_warm_in_the_pool(
    user, other_user, notes, fake, auth_server  # noqa: F811
):
    await sync_to_async(connect_oauth)(user, notes, login="alice")
    await sync_to_async(connect_oauth)(other_user, notes, login="bob")
    alices = (await token_of(user, notes)).access_token

    assert await whoami(user, fake) == "alice"
    assert len(mcp_pool().idle) == 1  # alice's connection, kept warm
    assert await whoami(other_user, fake) == "bob"
    assert await whoami(user, fake) == "alice"

    assert len(mcp_pool().idle) == 2
    assert all(login == "alice" for token, login in auth_server.seen if token == alices)
    assert "bob" in {login for _, login in auth_server.seen}


async def test_without_a_connection_the_websocket_turn_is_refused_before_the_model(user, notes, fake):  # noqa: F811
    ws = await connect(user)
    await start(ws, "Who am I there?")
    frame = await ws.receive_json_from(10)
    await ws.disconnect()

    assert frame["type"] == "error" and frame["code"] == "connection_required"
    assert frame["integration"] == {"id": notes.pk, "name": "notes", "auth": "oauth"}
    assert frame["connect_url"] == f"/api/v1/integrations/{notes.pk}/connect" and "notes" in frame["message"]
    assert fake.requests == []


async def test_without_a_connection_the_run_api_and_v1_answer_409(user, notes, fake):  # noqa: F811
    client = await client_for(user)
    run = await client.run({"message": "Who am I there?"})
    key = (await sync_to_async(api_key_create)(user=user, name="sdk")).key
    chat = await asgi_request(
        application, "POST", "/v1/chat/completions",
        body=json.dumps({"model": "helper", "messages": [{"role": "user", "content": "Who am I?"}]}).encode(),
        headers={"content-type": "application/json", "authorization": f"Bearer {key}"},
    )  # fmt: skip

    assert run.status_code == 409
    detail = json.loads(run.content)["detail"]
    assert detail["code"] == "connection_required" and detail["connect_url"] == f"/api/v1/integrations/{notes.pk}/connect"
    assert chat.status == 409
    error = json.loads(chat.body)["error"]
    assert error["code"] == "connection_required" and "notes" in error["message"]
    assert fake.requests == []


async def test_without_a_connection_code_assistance_answers_409(user, code_agent, notes, fake):  # noqa: F811
    client = await sse_client_for(user)

    answer = await client.post(CODE_ASSISTANCE, {"prompt": "Who am I there?"}, content_type="application/json")

    assert answer.status_code == 409
    detail = json.loads(answer.content)["detail"]
    assert detail["code"] == "connection_required" and detail["integration"]["name"] == "notes"
    assert fake.requests == []


async def test_a_token_never_follows_its_integration_to_another_server(user, notes, fake, auth_server):  # noqa: F811
    await sync_to_async(connect_oauth)(user, notes, login="alice")
    seen = len(auth_server.seen)
    with serve_http(_Recorder, headers=[]) as elsewhere:
        notes.mcp_server = {"type": "http", "url": f"{elsewhere.base_url}/mcp"}  # staff moved it
        await sync_to_async(notes.save)()

        frames = await turn(user, fake)

        assert frames[-1]["code"] == "connection_required" and "changed" in frames[-1]["message"]
        assert elsewhere.headers == [] and len(auth_server.seen) == seen and fake.requests == []


async def test_a_token_about_to_expire_is_refreshed_before_the_turn(user, notes, fake, auth_server):  # noqa: F811
    await sync_to_async(connect_oauth)(user, notes, login="alice")
    old = await token_of(user, notes)
    await Connection.objects.filter(pk=old.pk).aupdate(expires_at=timezone.now() + timedelta(seconds=5))

    assert await whoami(user, fake) == "alice"

    new = await token_of(user, notes)
    assert auth_server.redeemed[old.refresh_token] == 1
    assert new.access_token != old.access_token and new.refresh_token != old.refresh_token
    assert new.expires_at > timezone.now() + timedelta(minutes=30)
    assert auth_server.seen[-1][0] == new.access_token
    assert auth_server.token_requests[-1]["resource"] == f"{auth_server.base}/mcp"


async def test_a_refused_refresh_needs_reconnecting_and_refuses_the_turn(user, notes, fake, auth_server):  # noqa: F811
    await sync_to_async(connect_oauth)(user, notes, login="alice")
    row = await token_of(user, notes)
    await Connection.objects.filter(pk=row.pk).aupdate(expires_at=timezone.now() + timedelta(seconds=5))
    auth_server.refuse_refresh = True

    frames = await turn(user, fake)

    assert frames[-1]["type"] == "error" and frames[-1]["code"] == "connection_required"
    assert "reconnecting" in frames[-1]["message"]
    assert (await token_of(user, notes)).status == "needs_reconnect"
    listed = await sync_to_async(lambda: api_for(user).get("/api/v1/connections").json())()
    assert listed[0]["status"] == "needs_reconnect"
    assert fake.requests == []


async def test_an_expired_token_without_a_refresh_token_is_never_sent(user, notes, fake, auth_server):  # noqa: F811
    await sync_to_async(connect_oauth)(user, notes, login="alice")
    row = await token_of(user, notes)
    await Connection.objects.filter(pk=row.pk).aupdate(refresh_token="", expires_at=timezone.now() - timedelta(seconds=1))
    seen = len(auth_server.seen)

    frames = await turn(user, fake)

    assert frames[-1]["code"] == "connection_required" and "expired" in frames[-1]["message"]
    assert len(auth_server.seen) == seen and fake.requests == []


async def test_a_personal_token_reaches_the_server_as_the_user_gave_it(user, agent, fake, auth_server):  # noqa: F811
    integration = await Integration.objects.acreate(name="notes", provider="linear", auth="per_user_token",
                                                    mcp_server={"type": "http", "url": f"{auth_server.base}/mcp"})  # fmt: skip
    await agent.integrations.aadd(integration)
    with auth_server.lock:
        granted = auth_server.issue(login="carol", client_id="pat", resource=auth_server.resource, family="pat")
    client = await client_for(user)
    answer = await client.client.post(f"/api/v1/integrations/{integration.pk}/connect",
                                      {"token": granted["access_token"]}, content_type="application/json",
                                      headers=client.headers)  # fmt: skip
    assert answer.status_code == 201

    assert await whoami(user, fake) == "carol"
