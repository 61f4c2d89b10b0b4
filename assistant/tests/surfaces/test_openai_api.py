"""The OpenAI-compatible API in process (the served one, with the `openai` SDK, is in
test_openai_api_live.py): every `/v1` error in OpenAI's shape, unknown paths and methods included;
one conversation, one session (a request continuing a conversation had through `/v1` is the next
turn of its session; X-Session-ID continues one explicitly)."""

from __future__ import annotations

import json

import pytest
from asgiref.sync import sync_to_async

from agents.models import AIAgent, Message, UserAgentSession
from assistant.models import ClientSessionAlias
from assistant.tests.conftest import token_for
from config.asgi import application
from config.testing.asgi import asgi_request
from config.testing.fake_anthropic import Reply

pytestmark = pytest.mark.django_db(transaction=True)


async def v1(user, method: str, path: str, body: dict | None = None, **headers: str):
    token = await sync_to_async(token_for)(user)
    headers = {"authorization": f"Bearer {token}", "content-type": "application/json", **headers}
    raw = json.dumps(body).encode() if body is not None else b""
    return await asgi_request(application, method, path, headers=headers, body=raw)


def error_of(answer) -> dict:
    body = json.loads(answer.body)
    assert set(body) == {"error"} and set(body["error"]) == {"message", "type", "param", "code"}, body
    return body["error"]


async def chat(user, messages: list[dict], **headers: str):
    answer = await v1(user, "POST", "/v1/chat/completions", {"model": "helper", "messages": messages}, **headers)
    assert answer.status == 200, answer.body
    return answer, json.loads(answer.body)["choices"][0]["message"]["content"]


def stored(session_id: int) -> list[tuple[str, str]]:
    return [
        (m.role, "".join(b.get("text", "") for b in m.content))
        for m in Message.objects.filter(session_id=session_id).order_by("seq")
    ]


# --- errors -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/v1/nope"),
        ("GET", "/v1/responses/resp_123/input_items"),
        ("GET", "/v1/embeddings/x"),
        ("POST", "/v1/completions/x"),
        ("GET", "/v1"),
        ("GET", "/v1/"),
        ("DELETE", "/v1/models/helper/extra"),
    ],
)
async def test_an_unknown_path_is_openais_404_in_its_shape(user, method, path):
    answer = await v1(user, method, path, {"model": "helper", "input": "Hi"} if method == "POST" else None)
    assert answer.status == 404
    error = error_of(answer)
    assert error == {
        "message": f"Invalid URL ({method} {path.rstrip('/') if path != '/v1/' else path})",
        "type": "invalid_request_error", "param": None, "code": None,
    }  # fmt: skip


async def test_an_unknown_path_answers_the_same_without_a_key(db):
    answer = await asgi_request(application, "POST", "/v1/assistants", body=b"{}")
    assert answer.status == 404 and error_of(answer)["message"] == "Invalid URL (POST /v1/assistants)"


@pytest.mark.parametrize(
    ("method", "path", "allowed"),
    [
        ("GET", "/v1/chat/completions", "POST"),
        ("PUT", "/v1/chat/completions", "POST"),
        ("POST", "/v1/models", "GET"),
        ("DELETE", "/v1/models/helper", "GET"),
    ],
)
async def test_a_wrong_method_is_a_405_in_openais_shape(user, agent, method, path, allowed):
    answer = await v1(user, method, path)
    assert answer.status == 405 and answer.headers["allow"] == allowed
    assert error_of(answer) == {
        "message": f"Invalid method for URL ({method} {path})", "type": "invalid_request_error", "param": None,
        "code": None,
    }  # fmt: skip


def test_a_server_error_on_a_v1_path_is_in_openais_shape(rf):
    from config.views import not_found, server_error

    failed = server_error(rf.get("/v1/models"))
    assert failed.status_code == 500
    assert json.loads(failed.content)["error"] == {
        "message": "Internal server error.", "type": "server_error", "param": None, "code": "server_error",
    }  # fmt: skip
    assert json.loads(not_found(rf.get("/v1/models/x")).content)["error"]["type"] == "invalid_request_error"
    # Elsewhere, the API's own shape.
    assert json.loads(server_error(rf.get("/api/v1/agents")).content)["detail"]["code"] == "server_error"


# --- one conversation, one session ------------------------------------------------------------------


async def test_a_request_continuing_a_v1_conversation_is_the_next_turn_of_its_session(user, agent, fake):
    fake.script(Reply(text=["Hello, Alice."]), Reply(text=["Blue."]), Reply(text=["You asked about colours."]))
    opening = [{"role": "system", "content": "Be kind."}, {"role": "user", "content": "Hi, I'm Alice"}]
    first, hello = await chat(user, opening)
    session_id = int(first.headers["x-session-id"])
    assert hello == "Hello, Alice."

    conversation = [
        {"role": "system", "content": "Be kind."},
        {"role": "user", "content": "Hi, I'm Alice"},
        {"role": "assistant", "content": hello},
        {"role": "user", "content": "Favourite colour?"},
    ]
    second, blue = await chat(user, conversation)
    assert int(second.headers["x-session-id"]) == session_id
    conversation += [{"role": "assistant", "content": [{"type": "text", "text": blue}]},
                     {"role": "user", "content": "What did I ask?"}]  # fmt: skip
    third, _ = await chat(user, conversation)

    assert int(third.headers["x-session-id"]) == session_id
    assert await UserAgentSession.objects.filter(owner=user).acount() == 1
    assert await sync_to_async(stored)(session_id) == [
        ("user", "Hi, I'm Alice"), ("assistant", "Hello, Alice."), ("user", "Favourite colour?"), ("assistant", "Blue."),
        ("user", "What did I ask?"), ("assistant", "You asked about colours."),
    ]  # fmt: skip
    # The model saw the conversation once, not the history twice.
    assert [m["role"] for m in fake.requests[-1].body["messages"]] == ["user", "assistant"] * 2 + ["user"]
    # One alias row per session, found by the unique (owner, kind, key) index.
    assert await ClientSessionAlias.objects.filter(session_id=session_id, kind="v1_conversation").acount() == 1


async def test_a_history_that_differs_from_the_sessions_starts_a_new_session(user, agent, fake):
    first, hello = await chat(user, [{"role": "user", "content": "Hi"}])
    edited, _ = await chat(
        user, [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": hello + " (edited)"},
               {"role": "user", "content": "More"}],
    )  # fmt: skip
    regenerated, _ = await chat(user, [{"role": "user", "content": "Hi"}])  # no history: always a new session

    ids = {first.headers["x-session-id"], edited.headers["x-session-id"], regenerated.headers["x-session-id"]}
    assert len(ids) == 3
    assert await sync_to_async(stored)(int(edited.headers["x-session-id"])) == [
        ("user", "Hi"), ("assistant", hello + " (edited)"), ("user", "More"), ("assistant", hello),
    ]  # fmt: skip


async def test_the_same_conversation_of_another_user_or_agent_is_not_continued(user, other_user, agent, fake):
    await sync_to_async(AIAgent.objects.create)(
        name="Other", slug="other", system_prompt_text="Hi.", llm_config=agent.llm_config, is_active=True
    )
    first, hello = await chat(user, [{"role": "user", "content": "Hi"}])
    conversation = [
        {"role": "user", "content": "Hi"}, {"role": "assistant", "content": hello}, {"role": "user", "content": "And?"}
    ]  # fmt: skip

    theirs, _ = await chat(other_user, conversation)
    other_agent = await v1(user, "POST", "/v1/chat/completions", {"model": "other", "messages": conversation})

    assert theirs.headers["x-session-id"] != first.headers["x-session-id"]
    assert other_agent.status == 200 and other_agent.headers["x-session-id"] != first.headers["x-session-id"]
    assert await sync_to_async(stored)(int(first.headers["x-session-id"])) == [("user", "Hi"), ("assistant", hello)]


async def test_a_streamed_answer_moves_the_conversation_on_too(user, agent, fake):
    fake.script(Reply(text=["One", " two"]))
    body = {"model": "helper", "messages": [{"role": "user", "content": "Count"}], "stream": True}
    streamed = await v1(user, "POST", "/v1/chat/completions", body)
    assert streamed.status == 200 and b"[DONE]" in streamed.body

    second, _ = await chat(user, [{"role": "user", "content": "Count"}, {"role": "assistant", "content": "One two"},
                                  {"role": "user", "content": "Again"}])  # fmt: skip
    assert second.headers["x-session-id"] == streamed.headers["x-session-id"]


async def test_x_session_id_continues_that_session_with_its_stored_history(user, agent, fake):
    first, hello = await chat(user, [{"role": "user", "content": "Hi"}])
    session_id = first.headers["x-session-id"]

    second, _ = await chat(user, [{"role": "user", "content": "Only the new message"}], **{"x-session-id": session_id})

    assert second.headers["x-session-id"] == session_id
    assert await sync_to_async(stored)(int(session_id)) == [
        ("user", "Hi"), ("assistant", hello), ("user", "Only the new message"), ("assistant", hello),
    ]  # fmt: skip
    assert [m["role"] for m in fake.requests[-1].body["messages"]] == ["user", "assistant", "user"]


async def test_x_session_id_of_another_user_or_agent_or_none_is_a_404(user, other_user, agent, fake):
    first, _ = await chat(user, [{"role": "user", "content": "Hi"}])
    session_id = first.headers["x-session-id"]
    await sync_to_async(AIAgent.objects.create)(
        name="Other", slug="other", system_prompt_text="Hi.", llm_config=agent.llm_config, is_active=True
    )
    requests = [
        (other_user, "helper", session_id),
        (user, "other", session_id),
        (user, "helper", "999999"),
        (user, "helper", "not-a-number"),
    ]
    for who, model, header in requests:
        body = {"model": model, "messages": [{"role": "user", "content": "Hi"}]}
        answer = await v1(who, "POST", "/v1/chat/completions", body, **{"x-session-id": header})
        assert answer.status == 404, (model, header)
        assert error_of(answer)["code"] == "session_not_found"
    assert len(fake.requests) == 1
    assert await sync_to_async(stored)(int(session_id)) == [("user", "Hi"), ("assistant", "Hello from the fake model.")]


async def test_of_two_sessions_with_the_very_same_conversation_the_latest_is_continued(user, agent, fake):
    older, hello = await chat(user, [{"role": "user", "content": "Hi"}])
    latest, _ = await chat(user, [{"role": "user", "content": "Hi"}])  # the same answer: the same conversation

    continued, _ = await chat(user, [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": hello},
                                     {"role": "user", "content": "More"}])  # fmt: skip

    assert continued.headers["x-session-id"] == latest.headers["x-session-id"] != older.headers["x-session-id"]
    assert await ClientSessionAlias.objects.filter(owner=user).acount() == 1


async def test_a_code_assistance_session_continued_with_x_session_id_keeps_its_alias(user, agent, fake):
    session = await UserAgentSession.objects.acreate(owner=user, agent=agent, title="from code assistance")
    await ClientSessionAlias.objects.acreate(owner=user, kind="code_assistance", key="claude-session-1", session=session)

    answer, _ = await chat(user, [{"role": "user", "content": "Hi"}], **{"x-session-id": str(session.pk)})

    assert answer.headers["x-session-id"] == str(session.pk)
    alias = await ClientSessionAlias.objects.aget(session=session)
    assert alias.kind == "code_assistance" and alias.key == "claude-session-1"
