"""`/v1/responses` in process (the served one, with the `openai` SDK and openai-agents, is in
test_openai_responses_live.py): the Response object and the documented event sequence, input items
and instructions reaching the model, `previous_response_id` continuing its session (owner only),
`GET /v1/responses/{id}`, `store: false`, options not served yet refused clearly."""

from __future__ import annotations

import json

import pytest
from asgiref.sync import sync_to_async

from agents.models import UserAgentSession
from assistant.models import StoredResponse
from assistant.tests.surfaces.test_openai_api import error_of, stored, v1
from config.testing.fake_anthropic import HttpError, Reply

pytestmark = pytest.mark.django_db(transaction=True)


async def create(user, **body):
    return await v1(user, "POST", "/v1/responses", {"model": "helper", **body})


def events_of(raw: bytes) -> list[tuple[str, dict]]:
    events = []
    for block in raw.decode().split("\n\n"):
        lines = dict(line.split(": ", 1) for line in block.splitlines() if not line.startswith(":"))
        if lines:
            events.append((lines["event"], json.loads(lines["data"])))
    return events


async def test_a_string_input_answers_a_completed_response_with_usage(user, agent, fake):
    fake.script(Reply(text=["Hello", " there."], input_tokens=20, output_tokens=7, cache_read_input_tokens=5))

    answer = await create(user, input="Hi", instructions="Answer briefly.", metadata={"ticket": "42"})

    assert answer.status == 200, answer.body
    body = json.loads(answer.body)
    assert body["id"].startswith("resp_") and body["object"] == "response" and body["status"] == "completed"
    assert body["model"] == "helper" and body["instructions"] == "Answer briefly." and body["metadata"] == {"ticket": "42"}
    [message] = body["output"]
    assert message["type"] == "message" and message["role"] == "assistant" and message["id"].startswith("msg_")
    assert message["content"] == [{"type": "output_text", "text": "Hello there.", "annotations": [], "logprobs": []}]
    assert body["usage"] == {
        "input_tokens": 25, "input_tokens_details": {"cached_tokens": 5}, "output_tokens": 7,
        "output_tokens_details": {"reasoning_tokens": 0}, "total_tokens": 32,
    }  # fmt: skip
    # The instructions come after the agent's own system prompt.
    system = fake.requests[-1].body["system"]
    text = system if isinstance(system, str) else "".join(block["text"] for block in system)
    assert text.index("You are a helpful test agent.") < text.index("Answer briefly.")
    session_id = int(answer.headers["x-session-id"])
    assert await sync_to_async(stored)(session_id) == [("user", "Hi"), ("assistant", "Hello there.")]


async def test_message_items_are_the_history_and_the_last_user_item_is_answered(user, agent, fake):
    items = [
        {"role": "developer", "content": "Be terse."},
        {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "Hi, I'm Bob"}]},
        {"type": "message", "role": "assistant", "content": [{"type": "output_text", "text": "Hello Bob."}]},
        {"type": "reasoning", "id": "rs_1", "summary": []},
        {"role": "user", "content": "Who am I?"},
    ]

    answer = await create(user, input=items)

    assert answer.status == 200, answer.body
    sent = fake.requests[-1].body["messages"]
    assert [m["role"] for m in sent] == ["user", "assistant", "user"]
    assert sent[-1]["content"][-1]["text"] == "Who am I?"


async def test_a_streamed_response_sends_the_documented_events_in_order(user, agent, fake):
    fake.script(Reply(text=["One", " two"], input_tokens=3, output_tokens=2))

    answer = await create(user, input="Count", stream=True)

    assert answer.status == 200 and answer.headers["content-type"].startswith("text/event-stream")
    events = events_of(answer.body)
    names = [name for name, _ in events]
    assert names == [
        "response.created", "response.in_progress", "response.output_item.added", "response.content_part.added",
        *["response.output_text.delta"] * (names.count("response.output_text.delta")),
        "response.output_text.done", "response.content_part.done", "response.output_item.done", "response.completed",
    ]  # fmt: skip
    assert [data["sequence_number"] for _, data in events] == list(range(len(events)))
    assert all(data["type"] == name for name, data in events)
    assert "".join(d["delta"] for n, d in events if n == "response.output_text.delta") == "One two"
    created, completed = events[0][1]["response"], events[-1][1]["response"]
    assert created["status"] == "in_progress" and created["output"] == [] and created["id"] == completed["id"]
    assert completed["status"] == "completed" and completed["output"][0]["content"][0]["text"] == "One two"
    assert completed["usage"]["output_tokens"] == 2
    assert events[-2][1]["item"] == completed["output"][0]


async def test_previous_response_id_continues_its_session_with_the_stored_history(user, agent, fake):
    fake.script(Reply(text=["Hello, Alice."]), Reply(text=["You are Alice."]))
    first = json.loads((await create(user, input="Hi, I'm Alice")).body)

    second = await create(user, input="Who am I?", previous_response_id=first["id"])

    assert second.status == 200, second.body
    body = json.loads(second.body)
    assert body["previous_response_id"] == first["id"]
    session_id = int(second.headers["x-session-id"])
    assert await UserAgentSession.objects.filter(owner=user).acount() == 1
    assert await sync_to_async(stored)(session_id) == [
        ("user", "Hi, I'm Alice"), ("assistant", "Hello, Alice."), ("user", "Who am I?"), ("assistant", "You are Alice."),
    ]  # fmt: skip
    assert [m["role"] for m in fake.requests[-1].body["messages"]] == ["user", "assistant", "user"]


async def test_previous_response_id_of_another_user_or_unknown_is_openais_404(user, other_user, agent, fake):
    mine = json.loads((await create(user, input="Hi")).body)

    for who, previous in ((other_user, mine["id"]), (user, "resp_unknown")):
        answer = await create(who, input="Go on", previous_response_id=previous)
        assert answer.status == 404
        assert error_of(answer) == {
            "message": f"Previous response with id '{previous}' not found.", "type": "invalid_request_error",
            "code": "previous_response_not_found", "param": "previous_response_id",
        }  # fmt: skip
    assert len(fake.requests) == 1


async def test_get_returns_a_stored_response_to_its_owner_only(user, other_user, agent, fake):
    created = json.loads((await create(user, input="Hi")).body)

    mine = await v1(user, "GET", f"/v1/responses/{created['id']}")
    theirs = await v1(other_user, "GET", f"/v1/responses/{created['id']}")

    assert mine.status == 200 and json.loads(mine.body) == created
    assert theirs.status == 404 and error_of(theirs)["message"] == f"Response with id '{created['id']}' not found."


async def test_store_false_answers_but_keeps_no_response_to_get_or_continue(user, agent, fake):
    answer = await create(user, input="Hi", store=False)
    body = json.loads(answer.body)

    assert answer.status == 200 and body["store"] is False and body["output"][0]["content"][0]["text"]
    assert not await StoredResponse.objects.filter(pk=body["id"]).aexists()
    assert (await v1(user, "GET", f"/v1/responses/{body['id']}")).status == 404
    assert (await create(user, input="More", previous_response_id=body["id"])).status == 404


async def test_an_upstream_failure_is_a_502_in_openais_shape(user, agent, fake):
    fake.script(HttpError(500, "api_error", "Internal server error"))

    answer = await create(user, input="Hi", stream=True)

    assert answer.status == 502 and error_of(answer)["type"] == "server_error"


async def test_a_failure_mid_stream_ends_with_response_failed(user, agent, fake):
    fake.script(Reply(text=["Part", "ial", "never"], error_after=2))

    answer = await create(user, input="Hi", stream=True)

    events = events_of(answer.body)
    assert answer.status == 200 and [name for name, _ in events][-2:] == ["error", "response.failed"]
    failed = events[-1][1]["response"]
    assert failed["status"] == "failed" and failed["error"]["message"]
    assert failed["output"][0]["content"][0]["text"] == "Partial"


@pytest.mark.parametrize(
    ("body", "param", "message"),
    [
        ({"input": "Hi", "tools": [{"type": "web_search_preview"}]}, "tools[0].type", "'web_search_preview' are not supported"),
        ({"input": "Hi", "tools": [{"type": "function", "name": "f", "parameters": {}}]}, "tools[0].parameters.type", "object"),
        ({"input": "Hi", "tools": [{"type": "function", "name": "a b"}]}, "tools[0].name", "`name`"),
        ({"input": "Hi", "tools": [{"type": "function", "name": "f"}], "tool_choice": {"type": "function", "name": "g"}},
         "tool_choice.name", "not in `tools`"),
        ({"input": "Hi", "tool_choice": {"type": "file_search"}}, "tool_choice", "`tool_choice` must be"),
        ({"input": "Hi", "parallel_tool_calls": "yes"}, "parallel_tool_calls", "boolean"),
        ({"input": "Hi", "text": {"format": {"type": "xml"}}}, "text.format.type", "json_schema"),
        ({"input": "Hi", "text": {"format": {"type": "json_schema", "name": "a b", "schema": {"type": "object"}}}},
         "text.format.name", "`name`"),
        ({"input": "Hi", "text": {"format": {"type": "json_schema", "name": "a", "schema": {"type": "string"}}}},
         "text.format.schema.type", "object"),
        ({"input": [{"role": "user", "content": [{"type": "input_image", "image_url": "http://x.test/a.png"}]}]},
         "input[0].content[0].image_url", "https URL"),
        ({"input": [{"role": "user", "content": [{"type": "input_image", "image_url": "data:image/png;base64,AAAA"}]}]},
         "input[0].content[0].image_url", "not image/png"),
        ({"input": [{"role": "user", "content": [{"type": "input_image", "file_id": "file-1"}]}]},
         "input[0].content[0].file_id", "file_id"),
        ({"input": [{"type": "function_call_output", "call_id": "c", "output": "x"}]}, "input", "function_call_output"),
        ({}, "input", "`input` is required"),
        ({"input": []}, "input", "`input` must be"),
        ({"input": [{"type": "item_reference", "id": "x"}]}, "input[0].type", "not supported"),
        ({"input": [{"role": "user", "content": [{"type": "input_file", "file_id": "x"}]}]}, "input[0].content[0].type", "not supported"),
        ({"input": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Yo"}]}, "input", "last input item"),
        ({"input": [{"role": "robot", "content": "Hi"}]}, "input[0].role", "`role`"),
        ({"input": "Hi", "previous_response_id": "nope"}, "previous_response_id", "resp_"),
        ({"input": "Hi", "max_output_tokens": 0}, "max_output_tokens", "positive"),
        ({"input": "Hi", "metadata": {f"k{n}": "v" for n in range(17)}}, "metadata", "at most 16"),
        ({"input": "Hi", "model": ""}, "model", "slug"),
    ],
)
async def test_bad_input_is_a_400_naming_the_field(user, agent, fake, body, param, message):
    answer = await create(user, **body)

    assert answer.status == 400, answer.body
    error = error_of(answer)
    assert error["param"] == param and message in error["message"], error
    assert fake.requests == []


async def test_an_unknown_agent_is_model_not_found(user, agent, fake):
    answer = await v1(user, "POST", "/v1/responses", {"model": "nobody", "input": "Hi"})
    assert answer.status == 404 and error_of(answer)["code"] == "model_not_found"


async def test_continuing_an_earlier_response_again_branches_into_a_new_session(user, agent, fake):
    fake.script(Reply(text=["Hello, Alice."]), Reply(text=["Blue."]), Reply(text=["Red, then."]))
    first = json.loads((await create(user, input="Hi, I'm Alice")).body)
    later = await create(user, input="Favourite colour?", previous_response_id=first["id"])

    branch = await create(user, input="Pick another colour", previous_response_id=first["id"])

    assert branch.status == 200, branch.body
    assert branch.headers["x-session-id"] != later.headers["x-session-id"]
    assert await sync_to_async(stored)(int(branch.headers["x-session-id"])) == [
        ("user", "Hi, I'm Alice"), ("assistant", "Hello, Alice."), ("user", "Pick another colour"), ("assistant", "Red, then."),
    ]  # fmt: skip
    assert await sync_to_async(stored)(int(later.headers["x-session-id"])) == [
        ("user", "Hi, I'm Alice"), ("assistant", "Hello, Alice."), ("user", "Favourite colour?"), ("assistant", "Blue."),
    ]  # fmt: skip
    assert [m["role"] for m in fake.requests[-1].body["messages"]] == ["user", "assistant", "user"]


async def test_function_call_items_of_the_history_reach_the_model_as_tool_calls_and_results(user, agent, fake):
    items = [
        {"role": "user", "content": "What's in notes.txt?"},
        {"type": "function_call", "call_id": "call_1", "name": "read_file", "arguments": '{"path": "notes.txt"}'},
        {"type": "function_call_output", "call_id": "call_1", "output": "milk, eggs"},
        {"type": "message", "role": "assistant", "content": [{"type": "output_text", "text": "Milk and eggs."}]},
        {"role": "user", "content": "And now?"},
    ]

    answer = await create(user, input=items)

    assert answer.status == 200, answer.body
    assert fake.requests[-1].body["messages"][:3] == [
        {"role": "user", "content": [{"type": "text", "text": "What's in notes.txt?"}]},
        {"role": "assistant", "content": [{"type": "tool_use", "id": "call_1", "name": "read_file", "input": {"path": "notes.txt"}}]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "call_1", "content": "milk, eggs", "is_error": False}]},
    ]  # fmt: skip


async def test_delete_forgets_a_response_of_its_owner_only(user, other_user, agent, fake):
    created = json.loads((await create(user, input="Hi")).body)

    theirs = await v1(other_user, "DELETE", f"/v1/responses/{created['id']}")
    mine = await v1(user, "DELETE", f"/v1/responses/{created['id']}")

    assert theirs.status == 404
    assert mine.status == 200 and json.loads(mine.body) == {"id": created["id"], "object": "response", "deleted": True}
    assert (await v1(user, "GET", f"/v1/responses/{created['id']}")).status == 404
    assert await UserAgentSession.objects.filter(owner=user).acount() == 1  # the turn stays in its session
    wrong = await v1(user, "PUT", f"/v1/responses/{created['id']}")
    assert wrong.status == 405 and wrong.headers["allow"] == "GET, DELETE"
