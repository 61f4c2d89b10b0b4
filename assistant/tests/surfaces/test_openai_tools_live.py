"""Client tools, structured output and images on `/v1/chat/completions`, with the real `openai` SDK
against a served Conduit whose agents' models are the fake Anthropic and fake OpenAI-compatible
servers (which record what reached them). Every turn of this server also has the agent's own
`lookup` tool (assistant/tests/lookup_tool.py), run by the server."""

from __future__ import annotations

import base64
import json
import uuid

import openai
import pytest
import requests
from django.core.management import call_command
from django.db import connection
from pydantic import BaseModel

from config.testing.fake_anthropic import Reply, ToolUse, fake_anthropic_server
from config.testing.fake_openai import Chunks, FunctionCall, fake_openai_server
from config.testing.processes import database_url_for_children, http_json, running_server, signed_up

pytestmark = pytest.mark.django_db(transaction=True, reset_sequences=True)

WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "The weather in a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    },
}
PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 32
PNG_URL = "data:image/png;base64," + base64.b64encode(PNG).decode()


class Weather(BaseModel):
    city: str
    celsius: int


@pytest.fixture(scope="module")
def child_database(tmp_path_factory, django_db_setup, django_db_blocker) -> str:
    with django_db_blocker.unblock():
        if connection.vendor == "postgresql":
            call_command("flush", interactive=False, reset_sequences=True, verbosity=0)
        return database_url_for_children(tmp_path_factory.mktemp("openai-tools"))


@pytest.fixture(scope="module")
def models():
    with fake_anthropic_server() as claude, fake_openai_server() as gpt:
        yield {"anthropic": claude, "openai": gpt}


@pytest.fixture(scope="module")
def server(child_database, models):
    env = {
        "DATABASE_URL": child_database, "ANTHROPIC_MAX_RETRIES": "0", "OPENAI_MAX_RETRIES": "0",
        "OUTBOUND_ALLOWED_HOSTS": "127.0.0.1",  # the users' configs name the fake models on 127.0.0.1
    }  # fmt: skip
    with running_server(env, application="assistant.tests.lookup_tool:application") as base:
        yield base


class Client:
    """A new user with an agent on one of the fake models, and the SDK with their API key."""

    def __init__(self, base: str, provider: str, fake) -> None:
        self.base, self.fake = base, fake
        _, token = signed_up(base)
        model = "claude-test-1" if provider == "anthropic" else "gpt-test-1"
        config = {"name": "Model", "provider": provider, "model": model, "base_url": fake.base_url, "api_key": "sk-x"}
        status, created = http_json("POST", f"{base}/api/v1/llm-configs", config, token)
        assert status == 201, created
        self.slug = f"agent-{uuid.uuid4().hex[:6]}"
        body = {"name": "Agent", "slug": self.slug, "system_prompt_text": "Be brief.", "llm_config": created["id"]}
        status, agent = http_json("POST", f"{base}/api/v1/agents", body, token)
        assert status == 201, agent
        status, key = http_json("POST", f"{base}/api/v1/auth/api-keys", {"name": "sdk"}, token)
        assert status == 201, key
        self.key = key["key"]
        self.sdk = openai.OpenAI(api_key=self.key, base_url=f"{base}/v1", max_retries=0, timeout=30)
        self.seen = len(fake.requests)

    def create(self, **kwargs):
        raw = self.sdk.chat.completions.with_raw_response.create(model=self.slug, **kwargs)
        return raw.parse(), raw.headers["x-session-id"]

    def received(self) -> list[dict]:
        """The bodies of the requests the fake model received for this client since the last call."""
        bodies = [r.body for r in self.fake.requests[self.seen :]]
        self.seen = len(self.fake.requests)
        return bodies

    def stored(self, session_id: str) -> list[dict]:
        status, page = http_json("GET", f"{self.base}/api/v1/sessions/{session_id}/messages", None, self.key)
        assert status == 200, page
        return page["results"]


@pytest.fixture
def claude(server, models) -> Client:
    return Client(server, "anthropic", models["anthropic"])


@pytest.fixture
def gpt(server, models) -> Client:
    return Client(server, "openai", models["openai"])


# --- client tools -----------------------------------------------------------------------------------


def test_a_client_tool_call_ends_the_answer_and_its_result_continues_the_same_session(claude):
    claude.fake.script(
        Reply(text=["Let me check."], tool_uses=[ToolUse("get_weather", {"city": "Paris"})], stop_reason="tool_use"),
        Reply(text=["Sunny in Paris."]),
    )  # fmt: skip
    messages = [{"role": "user", "content": "Weather in Paris?"}]
    first, session_id = claude.create(messages=messages, tools=[WEATHER], tool_choice="required", parallel_tool_calls=False)

    choice = first.choices[0]
    assert choice.finish_reason == "tool_calls" and choice.message.content == "Let me check."
    [call] = choice.message.tool_calls
    assert call.type == "function" and call.function.name == "get_weather"
    assert json.loads(call.function.arguments) == {"city": "Paris"}
    [sent] = claude.received()
    assert [tool["name"] for tool in sent["tools"]] == ["lookup", "get_weather"]  # the agent's and the client's
    assert sent["tools"][1]["input_schema"] == WEATHER["function"]["parameters"]
    assert sent["tool_choice"] == {"type": "any", "disable_parallel_tool_use": True}

    # The client runs its tool and sends the result, echoing the answer as the SDK gives it.
    messages += [choice.message, {"role": "tool", "tool_call_id": call.id, "content": "Sunny, 24°C"}]
    second, second_session = claude.create(messages=messages, tools=[WEATHER])

    assert second_session == session_id  # the conversation continued, not started again
    assert second.choices[0].message.content == "Sunny in Paris." and second.choices[0].finish_reason == "stop"
    [sent] = claude.received()
    assert "tool_choice" not in sent  # not asked this time
    assert sent["messages"][-2]["content"][-1] == {"type": "tool_use", "id": call.id, "name": "get_weather", "input": {"city": "Paris"}}
    assert sent["messages"][-1]["content"] == [{"type": "tool_result", "tool_use_id": call.id, "content": "Sunny, 24°C", "is_error": False}]
    stored = claude.stored(session_id)
    assert [m["role"] for m in stored] == ["user", "assistant", "user", "assistant"]
    assert [m["status"] for m in stored] == ["complete"] * 4


def test_server_tools_called_beside_client_tools_run_first_and_their_results_go_with_the_clients(claude):
    claude.fake.script(
        Reply(tool_uses=[ToolUse("lookup", {"word": "hej"}), ToolUse("get_weather", {"city": "Oslo"})], stop_reason="tool_use"),
        Reply(text=["Hej means hello; it is cold in Oslo."]),
    )  # fmt: skip
    messages = [{"role": "user", "content": "What is hej, and the weather in Oslo?"}]
    first, session_id = claude.create(messages=messages, tools=[WEATHER])

    [call] = first.choices[0].message.tool_calls  # only the client's: the server ran its own
    assert call.function.name == "get_weather" and first.choices[0].message.content is None
    assert first.choices[0].finish_reason == "tool_calls"
    assert len(claude.received()) == 1  # the model isn't asked again until the client's result comes
    stored = claude.stored(session_id)  # the answer asking for both, then the server's result
    assert [(m["role"], m["status"]) for m in stored] == [("user", "complete"), ("assistant", "complete"), ("user", "complete")]
    assert [b["type"] for b in stored[1]["content"]] == ["tool_use", "tool_use"]
    assert [b["tool_use_id"] for b in stored[2]["content"]] == [stored[1]["content"][0]["id"]]

    messages += [first.choices[0].message, {"role": "tool", "tool_call_id": call.id, "content": "-3°C"}]
    second, second_session = claude.create(messages=messages, tools=[WEATHER])

    assert second_session == session_id
    assert second.choices[0].message.content == "Hej means hello; it is cold in Oslo."
    [sent] = claude.received()
    results = sent["messages"][-1]["content"]  # one user message answering both calls of the answer
    assert [(r["type"], r["content"]) for r in results] == [("tool_result", "hej means hello"), ("tool_result", "-3°C")]


def test_a_streamed_client_tool_call_comes_as_openai_sends_it_from_an_openai_compatible_model(gpt):
    gpt.fake.script(Chunks(tool_calls=[FunctionCall("get_weather", {"city": "Lisbon" * 60})]))
    stream = gpt.sdk.chat.completions.create(
        model=gpt.slug, messages=[{"role": "user", "content": "Weather?"}], stream=True, tools=[WEATHER],
        tool_choice={"type": "function", "function": {"name": "get_weather"}}, parallel_tool_calls=False,
    )  # fmt: skip
    chunks = list(stream)

    pieces = [c.choices[0].delta.tool_calls[0] for c in chunks if c.choices and c.choices[0].delta.tool_calls]
    assert pieces[0].index == 0 and pieces[0].id and pieces[0].function.name == "get_weather"
    assert len(pieces) > 2 and all(p.index == 0 and p.id is None for p in pieces[1:])  # arguments in pieces
    assert json.loads("".join(p.function.arguments or "" for p in pieces)) == {"city": "Lisbon" * 60}
    assert [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason] == ["tool_calls"]
    [sent] = gpt.received()
    assert [t["function"]["name"] for t in sent["tools"]] == ["lookup", "get_weather"]
    assert sent["tool_choice"] == {"type": "function", "function": {"name": "get_weather"}}
    assert sent["parallel_tool_calls"] is False


def test_tool_choice_none_reaches_both_providers(claude, gpt):
    claude.create(messages=[{"role": "user", "content": "Hi"}], tools=[WEATHER], tool_choice="none")
    gpt.create(messages=[{"role": "user", "content": "Hi"}], tools=[WEATHER], tool_choice="none")
    assert claude.received()[0]["tool_choice"] == {"type": "none"}
    assert gpt.received()[0]["tool_choice"] == "none"


# --- structured output ------------------------------------------------------------------------------


def test_parse_with_a_pydantic_model_on_anthropic_answers_through_a_forced_tool(claude):
    claude.fake.script(Reply(tool_uses=[ToolUse("structured_answer", {"city": "Paris", "celsius": 21})], stop_reason="tool_use"))
    parsed = claude.sdk.chat.completions.parse(
        model=claude.slug, messages=[{"role": "user", "content": "Weather in Paris as JSON"}], response_format=Weather
    )
    assert parsed.choices[0].message.parsed == Weather(city="Paris", celsius=21)
    assert parsed.choices[0].finish_reason == "stop"
    [sent] = claude.received()
    output = sent["tools"][-1]
    assert output["name"] == "structured_answer" and output["input_schema"]["properties"].keys() == {"city", "celsius"}
    # The agent's own tool may be called first; the answer must come through the output tool.
    assert sent["tool_choice"] == {"type": "any", "disable_parallel_tool_use": True}


def test_a_streamed_json_object_answer_on_anthropic_is_content_deltas(claude):
    claude.fake.script(Reply(tool_uses=[ToolUse("structured_answer", {"ok": True, "items": [1, 2]})], stop_reason="tool_use"))
    chunks = list(
        claude.sdk.chat.completions.create(
            model=claude.slug, messages=[{"role": "user", "content": "JSON please"}], stream=True,
            response_format={"type": "json_object"},
        )  # fmt: skip
    )
    texts = [c.choices[0].delta.content for c in chunks if c.choices and c.choices[0].delta.content]
    assert len(texts) > 1 and json.loads("".join(texts)) == {"ok": True, "items": [1, 2]}
    assert not any(c.choices[0].delta.tool_calls for c in chunks if c.choices)
    [sent] = claude.received()
    assert sent["tools"][-1]["input_schema"]["type"] == "object"


def test_a_client_tool_named_like_the_output_tool_doesnt_take_its_place(claude):
    claude.fake.script(Reply(tool_uses=[ToolUse("structured_answer_", {"city": "Rome", "celsius": 30})], stop_reason="tool_use"))
    answer, _ = claude.create(
        messages=[{"role": "user", "content": "Weather in Rome"}], response_format={"type": "json_object"},
        tools=[bad("structured_answer")],
    )  # fmt: skip
    assert json.loads(answer.choices[0].message.content) == {"city": "Rome", "celsius": 30}
    assert answer.choices[0].message.tool_calls is None
    [sent] = claude.received()
    assert [tool["name"] for tool in sent["tools"]] == ["lookup", "structured_answer", "structured_answer_"]


def test_parse_on_an_openai_compatible_model_passes_the_response_format_on(gpt):
    gpt.fake.script(Chunks(text=['{"city": "Oslo", ', '"celsius": -3}']))
    parsed = gpt.sdk.chat.completions.parse(
        model=gpt.slug, messages=[{"role": "user", "content": "Weather in Oslo"}], response_format=Weather
    )
    assert parsed.choices[0].message.parsed == Weather(city="Oslo", celsius=-3)
    [sent] = gpt.received()
    assert sent["response_format"]["type"] == "json_schema"
    assert sent["response_format"]["json_schema"]["name"] == "Weather"
    assert sent["response_format"]["json_schema"]["strict"] is True
    assert sent["response_format"]["json_schema"]["schema"]["properties"].keys() == {"city", "celsius"}


# --- images -----------------------------------------------------------------------------------------


def image_message(*urls: str) -> list[dict]:
    parts = [{"type": "text", "text": "What is in these?"}] + [{"type": "image_url", "image_url": {"url": u}} for u in urls]
    return [{"role": "user", "content": parts}]


def test_image_parts_reach_anthropic_as_image_blocks_and_are_stored(claude):
    answer, session_id = claude.create(messages=image_message(PNG_URL, "https://example.com/cat.jpg"))
    assert answer.choices[0].message.content == "Hello from the fake model."
    [sent] = claude.received()
    assert sent["messages"][-1]["content"] == [
        {"type": "text", "text": "What is in these?"},
        {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": PNG_URL.split(",", 1)[1]}},
        {"type": "image", "source": {"type": "url", "url": "https://example.com/cat.jpg"}},
    ]
    assert [b["type"] for b in claude.stored(session_id)[0]["content"]] == ["text", "image", "image"]
    # The turn's `session` event counts them, for pages that show the message from its events.
    reply = requests.get(f"{claude.base}/api/v1/sessions/{session_id}/events?after=0",
                         headers={"Authorization": f"Bearer {claude.key}"}, timeout=30)  # fmt: skip
    events = [json.loads(line[5:]) for line in reply.text.splitlines() if line.startswith("data:")]
    assert events[0]["type"] == "session"
    assert events[0]["user_message"]["images"] == 2


def test_image_parts_reach_an_openai_compatible_model_as_image_url_parts(gpt):
    gpt.create(messages=image_message(PNG_URL, "https://example.com/cat.jpg"))
    [sent] = gpt.received()
    assert sent["messages"][-1]["content"] == [
        {"type": "text", "text": "What is in these?"},
        {"type": "image_url", "image_url": {"url": PNG_URL}},
        {"type": "image_url", "image_url": {"url": "https://example.com/cat.jpg"}},
    ]


# --- refusals ---------------------------------------------------------------------------------------


def bad(name: str, parameters=None) -> dict:
    return {"type": "function", "function": {"name": name, "parameters": parameters or {"type": "object"}}}


@pytest.mark.parametrize(
    ("options", "param"),
    [
        ({"tools": [bad("no spaces allowed")]}, "tools[0].function.name"),
        ({"tools": [bad("x" * 65)]}, "tools[0].function.name"),
        ({"tools": [WEATHER, bad("f", {"type": "array"})]}, "tools[1].function.parameters.type"),
        ({"tools": [WEATHER, WEATHER]}, "tools[1].function.name"),
        ({"tools": [{"type": "web_search"}]}, "tools[0].type"),
        ({"tools": [bad(f"f{i}") for i in range(129)]}, "tools"),
        ({"tools": [bad("f", {"type": "object", "description": "x" * 70_000})]}, "tools[0].function.parameters"),
        ({"tools": [WEATHER], "tool_choice": {"type": "function", "function": {"name": "nope"}}}, "tool_choice.function.name"),
        ({"tool_choice": "sometimes"}, "tool_choice"),
        ({"parallel_tool_calls": "yes"}, "parallel_tool_calls"),
        ({"response_format": {"type": "xml"}}, "response_format.type"),
        ({"response_format": {"type": "json_schema", "json_schema": {"name": "a b", "schema": {"type": "object"}}}},
         "response_format.json_schema.name"),
        ({"response_format": {"type": "json_schema", "json_schema": {"name": "a", "schema": {"type": "string"}}}},
         "response_format.json_schema.schema.type"),
        ({"messages": image_message("http://example.com/cat.png")}, "messages[0].content[1].image_url.url"),
        ({"messages": image_message("file:///etc/passwd")}, "messages[0].content[1].image_url.url"),
        ({"messages": image_message("data:image/svg+xml;base64,PHN2Zz4=")}, "messages[0].content[1].image_url.url"),
        ({"messages": image_message("data:image/png;base64,not base64!")}, "messages[0].content[1].image_url.url"),
        ({"messages": image_message("data:image/jpeg;base64," + base64.b64encode(PNG).decode())}, "messages[0].content[1].image_url.url"),
        ({"messages": image_message("data:image/png;base64," + "A" * 7_000_000)}, "messages[0].content[1].image_url.url"),
        ({"messages": image_message(*["https://example.com/a.png"] * 21)}, "messages[0].content[21]"),
        ({"messages": [{"role": "tool", "tool_call_id": "call_1", "content": "orphan"}]}, "messages"),
    ],
)  # fmt: skip
def test_bad_tools_options_and_images_are_400s_naming_the_param(claude, options, param):
    body = {"messages": [{"role": "user", "content": "Hi"}], **options}
    with pytest.raises(openai.BadRequestError) as refused:
        claude.sdk.chat.completions.create(model=claude.slug, **body)
    assert refused.value.param == param, refused.value.message
    assert claude.received() == []  # the model was never asked


def test_a_client_tool_named_like_an_agents_own_tool_is_a_400_naming_it(claude):
    with pytest.raises(openai.BadRequestError) as refused:
        claude.sdk.chat.completions.create(
            model=claude.slug, messages=[{"role": "user", "content": "Hi"}], tools=[WEATHER, bad("lookup")]
        )
    assert refused.value.param == "tools[1].function.name" and "`lookup`" in refused.value.message
    assert claude.received() == []


# --- the same on /v1/responses ------------------------------------------------------------------------

RESPONSES_WEATHER = {"type": "function", "name": "get_weather", "strict": False, **{k: v for k, v in WEATHER["function"].items() if k != "name"}}


def respond(client: Client, **kwargs):
    raw = client.sdk.responses.with_raw_response.create(model=client.slug, **kwargs)
    return raw.parse(), raw.headers["x-session-id"]


def test_responses_function_calls_are_output_items_and_their_outputs_continue_the_session(claude):
    claude.fake.script(
        Reply(text=["Let me check."], tool_uses=[ToolUse("get_weather", {"city": "Paris"})], stop_reason="tool_use"),
        Reply(text=["Sunny in Paris."]),
    )  # fmt: skip
    first, session_id = respond(
        claude, input="Weather in Paris?", tools=[RESPONSES_WEATHER], tool_choice={"type": "function", "name": "get_weather"},
        parallel_tool_calls=False,
    )  # fmt: skip

    assert [item.type for item in first.output] == ["message", "function_call"] and first.output_text == "Let me check."
    call = first.output[1]
    assert call.id.startswith("fc_") and call.name == "get_weather" and call.status == "completed"
    assert json.loads(call.arguments) == {"city": "Paris"}
    assert first.tools[0].name == "get_weather" and first.tool_choice.name == "get_weather"
    [sent] = claude.received()
    assert [tool["name"] for tool in sent["tools"]] == ["lookup", "get_weather"]
    assert sent["tool_choice"] == {"type": "tool", "name": "get_weather", "disable_parallel_tool_use": True}

    output = {"type": "function_call_output", "call_id": call.call_id, "output": "Sunny, 24°C"}
    second, second_session = respond(claude, input=[output], previous_response_id=first.id, tools=[RESPONSES_WEATHER])

    assert second_session == session_id and second.output_text == "Sunny in Paris."
    [sent] = claude.received()
    assert sent["messages"][-2]["content"][-1]["id"] == call.call_id
    assert sent["messages"][-1]["content"] == [{"type": "tool_result", "tool_use_id": call.call_id, "content": "Sunny, 24°C", "is_error": False}]
    assert [(m["role"], m["status"]) for m in claude.stored(session_id)] == [
        ("user", "complete"), ("assistant", "complete"), ("user", "complete"), ("assistant", "complete"),
    ]  # fmt: skip
    with pytest.raises(openai.BadRequestError) as refused:  # a result for a call that response didn't make
        respond(claude, input=[{**output, "call_id": "call_other"}], previous_response_id=first.id)
    assert refused.value.param == "input[0].call_id"


def test_responses_server_and_client_calls_of_one_answer_continue_by_previous_response_id(claude):
    claude.fake.script(
        Reply(tool_uses=[ToolUse("lookup", {"word": "hej"}), ToolUse("get_weather", {"city": "Oslo"})], stop_reason="tool_use"),
        Reply(text=["Hej means hello; it is cold in Oslo."]),
    )  # fmt: skip
    first, session_id = respond(claude, input="What is hej, and the weather in Oslo?", tools=[RESPONSES_WEATHER])
    [call] = first.output  # only the client's: the server ran its own, whose result is stored after the answer
    claude.received()

    output = {"type": "function_call_output", "call_id": call.call_id, "output": "-3°C"}
    second, second_session = respond(claude, input=[output], previous_response_id=first.id, tools=[RESPONSES_WEATHER])

    assert second_session == session_id and second.output_text == "Hej means hello; it is cold in Oslo."
    [sent] = claude.received()
    assert [(r["type"], r["content"]) for r in sent["messages"][-1]["content"]] == [
        ("tool_result", "hej means hello"), ("tool_result", "-3°C"),
    ]  # fmt: skip


def test_responses_function_round_trip_by_resending_the_output_items_lands_in_one_session(gpt):
    gpt.fake.script(Chunks(tool_calls=[FunctionCall("get_weather", {"city": "Oslo"})]), Chunks(text=["Cold."]))
    items: list = [{"role": "user", "content": "Weather in Oslo?"}]
    first, session_id = respond(gpt, input=items, tools=[RESPONSES_WEATHER], tool_choice="required")
    [call] = first.output  # no text: only the call
    assert call.type == "function_call" and first.status == "completed"
    assert gpt.received()[0]["tool_choice"] == "required"

    items += [item.model_dump(exclude_none=True) for item in first.output]
    items.append({"type": "function_call_output", "call_id": call.call_id, "output": "-3°C"})
    second, second_session = respond(gpt, input=items, tools=[RESPONSES_WEATHER])

    assert second_session == session_id and second.output_text == "Cold."
    [sent] = gpt.received()
    assert sent["messages"][-1] == {"role": "tool", "tool_call_id": call.call_id, "content": "-3°C"}


def test_responses_stream_sends_the_function_call_events_the_sdk_assembles(gpt):
    gpt.fake.script(Chunks(text=["On it."], tool_calls=[FunctionCall("get_weather", {"city": "Lisbon" * 60})]))
    with gpt.sdk.responses.stream(model=gpt.slug, input="Weather?", tools=[RESPONSES_WEATHER]) as stream:
        events = list(stream)
        final = stream.get_final_response()

    kinds = [e.type for e in events]
    assert kinds[:2] == ["response.created", "response.in_progress"] and kinds[-1] == "response.completed"
    calls = kinds[kinds.index("response.output_text.done") :]
    assert calls[3:5] == ["response.output_item.added", "response.function_call_arguments.delta"]
    assert calls[-4:-1] == ["response.function_call_arguments.delta", "response.function_call_arguments.done", "response.output_item.done"]
    assert [e.sequence_number for e in events] == list(range(len(events)))
    added = next(e for e in events if e.type == "response.output_item.added" and e.item.type == "function_call")
    assert added.output_index == 1 and added.item.status == "in_progress" and added.item.arguments == ""
    done = next(e for e in events if e.type == "response.function_call_arguments.done")
    deltas = "".join(e.delta for e in events if e.type == "response.function_call_arguments.delta")
    assert json.loads(deltas) == json.loads(done.arguments) == {"city": "Lisbon" * 60}
    assert done.item_id == added.item.id == final.output[1].id
    assert final.output_text == "On it." and final.output[1].call_id == added.item.call_id


@pytest.mark.parametrize("provider", ["claude", "gpt"])
def test_responses_parse_with_a_pydantic_model_on_both_providers(provider, request):
    client: Client = request.getfixturevalue(provider)
    if provider == "claude":
        client.fake.script(Reply(tool_uses=[ToolUse("structured_answer", {"city": "Paris", "celsius": 21})], stop_reason="tool_use"))
    else:
        client.fake.script(Chunks(text=['{"city": "Paris", ', '"celsius": 21}']))

    parsed = client.sdk.responses.parse(model=client.slug, input="Weather in Paris as JSON", text_format=Weather)

    assert parsed.output_parsed == Weather(city="Paris", celsius=21)
    assert json.loads(parsed.output_text) == {"city": "Paris", "celsius": 21} and parsed.text.format.type == "json_schema"
    [sent] = client.received()
    if provider == "claude":
        assert sent["tools"][-1]["name"] == "structured_answer" and sent["tools"][-1]["input_schema"]["properties"].keys() == {"city", "celsius"}
    else:
        assert sent["response_format"]["json_schema"]["name"] == "Weather" and sent["response_format"]["json_schema"]["strict"] is True


def test_responses_input_images_reach_the_model_as_image_blocks(claude):
    content = [{"type": "input_text", "text": "What is in these?"}, {"type": "input_image", "image_url": PNG_URL},
               {"type": "input_image", "image_url": "https://example.com/cat.jpg", "detail": "auto"}]  # fmt: skip
    answer, session_id = respond(claude, input=[{"role": "user", "content": content}])

    assert answer.output_text == "Hello from the fake model."
    [sent] = claude.received()
    assert sent["messages"][-1]["content"][1:] == [
        {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": PNG_URL.split(",", 1)[1]}},
        {"type": "image", "source": {"type": "url", "url": "https://example.com/cat.jpg"}},
    ]
    assert [b["type"] for b in claude.stored(session_id)[0]["content"]] == ["text", "image", "image"]


def test_responses_bodies_with_images_may_be_larger_than_other_requests(claude):
    # Over DATA_UPLOAD_MAX_MEMORY_SIZE (2.5 MiB), under V1_CHAT_MAX_BODY_BYTES (20 MiB), as on chat completions.
    large = "data:image/png;base64," + base64.b64encode(PNG + b"\x00" * 3_500_000).decode()
    answer, _ = respond(claude, input=[{"role": "user", "content": [{"type": "input_image", "image_url": large}]}])
    assert answer.output_text == "Hello from the fake model."
    [sent] = claude.received()
    assert sent["messages"][-1]["content"][0]["source"]["data"] == large.split(",", 1)[1]


def test_responses_tools_of_other_types_and_conflicting_names_are_400s(claude):
    with pytest.raises(openai.BadRequestError) as other:
        claude.sdk.responses.create(model=claude.slug, input="Hi", tools=[{"type": "web_search_preview"}])
    with pytest.raises(openai.BadRequestError) as conflict:
        claude.sdk.responses.create(model=claude.slug, input="Hi", tools=[RESPONSES_WEATHER, {**RESPONSES_WEATHER, "name": "lookup"}])
    assert other.value.param == "tools[0].type" and "web_search_preview" in other.value.message
    assert conflict.value.param == "tools[1].name" and "`lookup`" in conflict.value.message
    assert claude.received() == []
