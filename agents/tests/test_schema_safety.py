"""Custom-properties schemas can't freeze or crash the server: regexes run on a linear-time engine,
schemas and values are bounded in size and depth, `$ref`s stay local and finite, nothing is fetched."""

from __future__ import annotations

import socket
import threading

import pytest

from agents import validators
from agents.models import AIAgent

HOSTILE_SCHEMA = {"type": "object", "properties": {"x": {"type": "string", "pattern": "^(a+)+$"}}}
HOSTILE_VALUE = "a" * 29 + "!"


def _fields(response) -> dict:
    assert response.status_code == 400, response.content
    body = response.json()["detail"]
    assert body["code"] == "invalid"
    return body["fields"]


def _nested(depth: int, key: str = "not") -> dict:
    schema: dict = {}
    for _ in range(depth - 1):
        schema = {key: schema}
    return schema


def _create_agent(client, schema, slug="guarded"):
    return client.post(
        "/api/v1/agents",
        {"name": "Guarded", "slug": slug, "system_prompt_text": "You help.", "custom_properties_schema": schema},
        format="json",
    )


def _start(client, agent_pk, custom_properties):
    return client.post("/api/v1/sessions", {"agent": agent_pk, "custom_properties": custom_properties}, format="json")


# --- regexes -----------------------------------------------------------------------------------


def test_a_backtracking_pattern_answers_400_for_a_hostile_value_and_201_for_a_matching_one(auth_client):
    agent = _create_agent(auth_client, HOSTILE_SCHEMA)
    assert agent.status_code == 201, agent.content

    hostile = _start(auth_client, agent.json()["id"], {"x": HOSTILE_VALUE})
    matching = _start(auth_client, agent.json()["id"], {"x": "a" * 30})

    assert _fields(hostile) == {"custom_properties": [f'x: "{HOSTILE_VALUE}" does not match "^(a+)+$"']}
    assert matching.status_code == 201, matching.content


@pytest.mark.parametrize(
    "schema, where",
    [
        ({"properties": {"x": {"type": "string", "pattern": r"^(a)\1$"}}}, "properties/x/pattern"),
        ({"properties": {"x": {"pattern": "^(?=a)a"}}}, "properties/x/pattern"),
        ({"patternProperties": {r"^(?<=x)y$": {}}}, "patternProperties/^(?<=x)y$"),
        ({"properties": {"x": {"pattern": "a{1000}{1000}"}}}, "properties/x/pattern"),
    ],
)
def test_a_regex_the_linear_engine_cant_run_is_refused_at_save_naming_where(auth_client, schema, where):
    response = _create_agent(auth_client, schema)

    (message,) = _fields(response)["custom_properties_schema"]
    assert message.startswith(f"Not a valid JSON Schema at {where}: "), message
    assert "is not a regular expression this server runs: no backreferences or lookaround" in message
    assert not AIAgent.objects.filter(slug="guarded").exists()


def test_pattern_properties_go_through_the_linear_engine(auth_client):
    agent = _create_agent(auth_client, {"type": "object", "patternProperties": {"^(a+)+$": {"type": "integer"}}})
    assert agent.status_code == 201, agent.content

    response = _start(auth_client, agent.json()["id"], {HOSTILE_VALUE: "x", "a" * 30: "not an integer"})

    assert _fields(response) == {"custom_properties": [f'{"a" * 30}: "not an integer" is not of type "integer"']}


def test_formats_are_annotations_so_no_regex_from_a_value_is_compiled(auth_client):
    agent = _create_agent(auth_client, {"properties": {"re": {"type": "string", "format": "regex"}}})

    response = _start(auth_client, agent.json()["id"], {"re": r"(a)\1(?=b)"})

    assert response.status_code == 201, response.content


def test_too_many_regexes_are_refused(auth_client):
    schema = {"properties": {f"p{i}": {"pattern": f"^{i}"} for i in range(validators.SCHEMA_MAX_PATTERNS + 1)}}

    response = _create_agent(auth_client, schema)

    assert _fields(response) == {
        "custom_properties_schema": ["At most 32 regular expressions (`pattern`, `patternProperties`)."]
    }


# --- size and depth ------------------------------------------------------------------------------


def test_a_schema_nested_900_deep_is_a_400_naming_the_field(auth_client):
    response = _create_agent(auth_client, _nested(900))

    # The JSON parser refuses it first (config/untrusted.py, 200 levels); the schema bound is 32.
    assert _fields(response) == {"custom_properties_schema": ["Nested deeper than 200 levels."]}
    deep_but_parseable = _create_agent(auth_client, _nested(60))
    (message,) = _fields(deep_but_parseable)["custom_properties_schema"]
    assert message.startswith("Nested deeper than 32 levels (at not/not/not/not/not/not/not/not/…)"), message


def test_admin_names_a_schema_nested_900_deep(client, make_user):
    client.force_login(make_user(is_staff=True, is_superuser=True))
    deep = '{"not": ' * 899 + "{}" + "}" * 899

    response = client.post(
        "/admin/agents/aiagent/add/",
        {"name": "Deep", "slug": "deep", "description": "", "category": "", "tags": "[]", "is_active": "on",
         "system_prompt_text": "You help.", "max_turns": "10",
         "custom_properties_schema": deep},
    )  # fmt: skip

    assert response.status_code == 200
    errors = response.context["adminform"].form.errors
    assert list(errors) == ["custom_properties_schema"], errors
    # Depending on the stack, json.loads gives up first ("Nested too deeply to read.") or the validator does.
    assert errors["custom_properties_schema"][0].startswith(("Nested too deeply", "Nested deeper than 32 levels"))
    assert not AIAgent.objects.filter(slug="deep").exists()


def test_the_depth_limit_is_inclusive(auth_client):
    assert _create_agent(auth_client, _nested(32), slug="deep-enough").status_code == 201
    too_deep = _fields(_create_agent(auth_client, _nested(33)))["custom_properties_schema"]
    assert too_deep[0].startswith("Nested deeper than 32 levels")


def test_a_schema_past_the_size_limit_is_refused_saying_the_limit(auth_client, settings):
    settings.AGENT_SCHEMA_MAX_BYTES = 100
    schema = {"type": "object", "description": "x" * 100}

    response = _create_agent(auth_client, schema)

    assert _fields(response) == {"custom_properties_schema": ["Too large: 134 bytes as JSON, at most 100."]}


def test_custom_properties_are_bounded_in_depth_and_size(auth_client, make_agent, settings):
    agent = make_agent(None, custom_properties_schema={"type": "object"})

    too_deep = _start(auth_client, agent.pk, {"a": _nested(40, key="b")})
    too_deep_for_json = _start(auth_client, agent.pk, {"a": _nested(900, key="b")})
    settings.CUSTOM_PROPERTIES_MAX_BYTES = 1000
    too_big = _start(auth_client, agent.pk, {"a": "x" * 1000})

    assert _fields(too_deep) == {"custom_properties": ["a.b.b.b.b.b.b.b.…: nested deeper than 32 levels."]}
    # Deeper than the caller's stack lets Python's parser go: parsed on a fresh stack, then named.
    assert too_deep_for_json.status_code == 400
    assert "Nested deeper than 200 levels." in str(_fields(too_deep_for_json)["custom_properties"])
    assert _fields(too_big) == {"custom_properties": ["Too large: 1008 bytes as JSON, at most 1000."]}


def test_a_value_too_large_for_its_schema_is_refused_before_it_is_evaluated(auth_client, make_agent):
    agent = make_agent(None, custom_properties_schema={"items": {"allOf": [{"minimum": 0}] * 2000}})

    response = _start(auth_client, agent.pk, {"a": [0] * 8000})

    (message,) = _fields(response)["custom_properties"]
    assert message.startswith("Too large to check against this agent's schema")


def test_a_failing_value_with_a_large_schema_gets_one_message_not_thousands(auth_client, make_agent):
    schema = {"properties": {"a": {"items": {"allOf": [{"minimum": 0}] * 300}}}}
    agent = make_agent(None, custom_properties_schema=schema)

    response = _start(auth_client, agent.pk, {"a": [-1] * 300})

    (message,) = _fields(response)["custom_properties"]
    assert message.startswith("Custom properties don't match the agent's schema (too large to list the problems")


def test_a_schema_stored_before_the_limits_is_reported_not_run(auth_client, make_agent):
    agent = make_agent(None)
    AIAgent.objects.filter(pk=agent.pk).update(custom_properties_schema={"properties": {"x": {"pattern": r"(a)\1"}}})

    response = _start(auth_client, agent.pk, {"x": "aa"})

    (message,) = _fields(response)["custom_properties"]
    assert message.startswith("The agent's custom properties schema can't be used; its owner must fix it: ")
    assert "properties/x/pattern" in message


# --- $ref --------------------------------------------------------------------------------------


class _Listener:
    """A TCP listener on 127.0.0.1 that counts the connections made to it."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen()
        self.sock.settimeout(0.2)
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}/schema.json"
        self.connections = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except OSError:
                continue
            self.connections += 1
            conn.sendall(b'HTTP/1.1 200 OK\r\nContent-Length: 17\r\n\r\n{"type":"string"}')
            conn.close()

    def close(self) -> None:
        self._stop.set()
        self._thread.join()
        self.sock.close()


@pytest.fixture
def listener():
    listener = _Listener()
    yield listener
    listener.close()


def test_a_remote_ref_is_refused_and_never_fetched(auth_client, listener):
    response = _create_agent(auth_client, {"properties": {"x": {"$ref": listener.url}}})
    relative = _create_agent(auth_client, {"$id": listener.url, "properties": {"x": {"$ref": "other.json"}}})

    assert _fields(response)["custom_properties_schema"][0].startswith(
        'properties/x/$ref: only local `$ref`s ("#/$defs/...") are allowed; nothing is fetched'
    )
    assert "only local `$ref`s" in _fields(relative)["custom_properties_schema"][0]
    assert listener.connections == 0


def test_the_engine_itself_never_fetches_a_remote_ref(listener):
    # Whatever the checks before it let through, the engine runs offline (jsonschema-rs fetches by default).
    with pytest.raises(validators.jsonschema_rs.ValidationError, match="Retrieval is disabled"):
        validators._engine({"$ref": listener.url})
    assert listener.connections == 0


@pytest.mark.parametrize(
    "schema, message",
    [
        ({"$ref": "#"}, "$ref: recursive `$ref`s are not supported."),
        ({"$defs": {"a": {"items": {"$ref": "#/$defs/a"}}}, "$ref": "#/$defs/a"}, "$defs/a/items/$ref: recursive"),
        ({"properties": {"a": {"$ref": "#/$defs/missing"}}}, "properties/a/$ref: '#/$defs/missing' points to nothing"),
        ({"$defs": {"a": {"$id": "https://example.com/a"}}}, "$defs/a/$id: `$id` is only allowed at the root"),
        ({"$dynamicRef": "#meta"}, "$dynamicRef: `$dynamicRef` is not supported"),
    ],
)
def test_refs_must_be_local_and_finite(auth_client, schema, message):
    response = _create_agent(auth_client, schema)

    assert _fields(response)["custom_properties_schema"][0].startswith(message)


def test_refs_that_would_multiply_evaluation_are_refused(auth_client):
    # d0 = allOf[d1, d1], d1 = allOf[d2, d2], ...: 2**30 evaluations of d30 for one value.
    defs = {f"d{i}": {"allOf": [{"$ref": f"#/$defs/d{i + 1}"}] * 2} for i in range(30)}
    defs["d30"] = {"type": "integer"}

    response = _create_agent(auth_client, {"$defs": defs, "$ref": "#/$defs/d0"})

    assert _fields(response) == {
        "custom_properties_schema": [
            "with every `$ref` inlined the schema would have more than 50000 nodes; reuse fewer definitions."
        ]
    }


def test_local_refs_work(auth_client):
    schema = {
        "$defs": {"key": {"type": "string", "pattern": "^[A-Z]+$"}},
        "type": "object",
        "properties": {"project": {"$ref": "#/$defs/key"}, "epic": {"$ref": "#/$defs/key"}},
    }
    agent = _create_agent(auth_client, schema)
    assert agent.status_code == 201, agent.content

    good = _start(auth_client, agent.json()["id"], {"project": "ABC", "epic": "DEF"})
    bad = _start(auth_client, agent.json()["id"], {"project": "ABC", "epic": "d"})

    assert good.status_code == 201, good.content
    assert _fields(bad) == {"custom_properties": ['epic: "d" does not match "^[A-Z]+$"']}


def test_additional_properties_are_named(auth_client, make_agent):
    agent = make_agent(None, custom_properties_schema={"type": "object", "additionalProperties": False})

    response = _start(auth_client, agent.pk, {"x": 1, "y": 2})

    assert _fields(response) == {"custom_properties": ["Additional properties are not allowed ('x', 'y' unexpected)"]}


# --- other surfaces ------------------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
async def test_a_websocket_start_checks_custom_properties_the_same_way(user):
    from asgiref.sync import sync_to_async

    from agents import services
    from assistant.tests.conftest import connect

    await sync_to_async(services.agent_create)(
        owner=None, name="Hostile", slug="hostile", system_prompt_text="Hi.", custom_properties_schema=HOSTILE_SCHEMA
    )
    ws = await connect(user)

    await ws.send_json_to(
        {"type": "start", "agent": "hostile", "message": "hi", "custom_properties": {"x": HOSTILE_VALUE}}
    )
    answer = await ws.receive_json_from(5)
    await ws.send_json_to(
        {"type": "start", "agent": "hostile", "message": "hi", "custom_properties": {"x": _nested(40, key="b")}}
    )
    too_deep = await ws.receive_json_from(5)
    await ws.disconnect()

    assert answer["type"] == "error" and answer["code"] == "invalid"
    assert answer["message"] == f'x: "{HOSTILE_VALUE}" does not match "^(a+)+$"'
    assert too_deep["code"] == "invalid" and too_deep["message"] == "x.b.b.b.b.b.b.b.…: nested deeper than 32 levels."


def test_a_schema_is_compiled_once_for_many_session_starts(auth_client, make_agent):
    agent = make_agent(None, custom_properties_schema={"type": "object", "properties": {"n": {"type": "integer"}}})
    validators._compiled.cache_clear()

    for n in range(3):
        assert _start(auth_client, agent.pk, {"n": n}).status_code == 201

    assert validators._compiled.cache_info().misses == 1
