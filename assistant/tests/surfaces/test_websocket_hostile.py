"""Hostile frames on `/ws/assistant/`: a frame with a NUL character (PostgreSQL refuses it), one
nested past the JSON parser's recursion, wrongly typed or out-of-range fields, each answer an `error`
frame and leave the socket open; a frame over ASSISTANT_MAX_FRAME_BYTES closes it with 1009 and a
reason (through Channels here, through a real daphne process in test_a_real_daphne_…); and a
property-based pass sends such frames, none of them closing the socket with 1011."""

from __future__ import annotations

import asyncio
import json
import uuid

import pytest
import websockets
from django.conf import settings
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from agents.models import Message, UserAgentSession
from assistant.tests.conftest import connect
from config.testing.hostile import TOO_LARGE, raw_bodies, raw_object, raw_values
from config.testing.processes import database_url_for_children, http_json, running_server
from config.untrusted import MAX_DB_INT

pytestmark = pytest.mark.django_db(transaction=True)

NUL = "a\x00b"


def _nested(depth: int) -> str:
    return '{"type": "ping", "x": ' + "[" * depth + "]" * depth + "}"


async def assert_refused_and_still_open(ws, frame: str | bytes, *, code: str = "invalid") -> dict:
    if isinstance(frame, bytes):
        await ws.send_to(bytes_data=frame)
    else:
        await ws.send_to(text_data=frame)
    answer = await ws.receive_json_from(10)
    assert answer["type"] == "error" and answer["code"] == code and answer["seq"] is None, answer
    await ws.send_json_to({"type": "ping"})
    assert await ws.receive_json_from(5) == {"type": "pong"}
    return answer


# Frames that reached PostgreSQL (NUL characters) or broke the parser (RecursionError), closing the
# socket with 1011; each is an error frame now, saying what and where, and nothing is stored.
FAILING_FRAMES = [
    (json.dumps({"type": "start", "agent": "helper", "message": NUL}), "`message`: Null characters"),
    (json.dumps({"type": "start", "agent": NUL, "message": "Hi"}), "`agent`: Null characters"),
    (
        json.dumps({"type": "start", "agent": "helper", "message": "Hi", "custom_properties": {"k": NUL}}),
        "`custom_properties.k`",
    ),
    (json.dumps({"type": "start", "agent": "helper", "message": "Hi", "custom_properties": {NUL: 1}}), "in a key"),
    (json.dumps({"type": "start", "agent": "helper", "message": "x\udc00"}), "lone surrogate"),
    ('{"type": "resume", "session_id": 1, "after_seq": 1e999}', "`after_seq`: Numbers must be finite"),
    (_nested(100_000), "Nested deeper"),
    (_nested(500), "`x`: Nested deeper"),
]
WRONG_FRAMES = [
    {"type": []},
    {"type": {"a": 1}},
    {"type": "start", "agent": ["helper"], "message": "Hi"},
    {"type": "start", "agent": "helper", "message": 12},
    {"type": "start", "agent": "helper", "message": "Hi", "custom_properties": [1]},
    {"type": "start", "session_id": MAX_DB_INT + 1, "message": "Hi"},
    {"type": "start", "session_id": -1, "message": "Hi"},
    {"type": "stop", "session_id": 10**30},
    {"type": "resume", "session_id": True},
    {"type": "resume", "session_id": 1, "after_seq": 2**64},
    {"type": "resume", "session_id": "1"},
]
NOT_JSON_OBJECTS = [b"\xff\xfe", b" ", " ", "[]", "null", '"text"', "{nope"]


async def test_a_frame_the_database_or_the_parser_would_fail_on_is_an_error_frame(user, agent):
    ws = await connect(user)
    for frame, says in FAILING_FRAMES:
        answer = await assert_refused_and_still_open(ws, frame)
        assert says in answer["message"], (frame[:100], answer)
    await ws.disconnect()
    assert not await UserAgentSession.objects.filter(owner=user).aexists()


async def test_wrongly_typed_or_out_of_range_fields_and_non_objects_are_error_frames(user, agent):
    ws = await connect(user)
    for frame in [json.dumps(frame) for frame in WRONG_FRAMES] + NOT_JSON_OBJECTS:
        await assert_refused_and_still_open(ws, frame)
    await ws.disconnect()
    assert not await UserAgentSession.objects.filter(owner=user).aexists()


async def test_a_session_id_within_64_bits_that_does_not_exist_is_not_found(user, agent):
    ws = await connect(user)
    for kind in ("stop", "resume"):
        answer = await assert_refused_and_still_open(
            ws, json.dumps({"type": kind, "session_id": MAX_DB_INT}), code="not_found"
        )
        assert answer["session_id"] == MAX_DB_INT
    await ws.disconnect()


async def test_a_frame_over_the_limit_closes_the_socket_with_1009_and_a_reason(user, settings):
    settings.ASSISTANT_MAX_FRAME_BYTES = 1000
    prefix, suffix = '{"type": "ping", "pad": "', '"}'
    room = 1000 - len(prefix) - len(suffix)
    at_limit = prefix + "é" * (room // 2) + "x" * (room % 2) + suffix  # 1,000 bytes in UTF-8
    assert len(at_limit.encode()) == 1000
    ws = await connect(user)
    await ws.send_to(text_data=at_limit)
    assert await ws.receive_json_from(5) == {"type": "pong"}

    await ws.send_to(text_data=prefix + "é" * (room // 2) + "x" * (room % 2 + 1) + suffix)  # 1,001 bytes

    closed = await ws.receive_output(5)
    assert closed["type"] == "websocket.close" and closed["code"] == 1009
    assert "1000 bytes" in closed["reason"]


def test_the_frame_limit_fits_the_longest_message_escaped():
    message = "é" * settings.ASSISTANT_MAX_MESSAGE_CHARS
    longest = json.dumps({"type": "start", "session_id": MAX_DB_INT, "message": message})
    assert len(longest.encode()) < settings.ASSISTANT_MAX_FRAME_BYTES < 2**20  # a 1 MiB frame is refused


# --- a property-based pass over the protocol ----------------------------------------------------------

REFUSALS = {"invalid", "not_found", "turn_in_progress", "no_turn", "agent_unavailable"}
FIELDS = ("type", "agent", "message", "session_id", "after_seq", "custom_properties")
SESSION = "__SESSION__"  # the id of a session of the user's, put in at run time
VALID_FRAMES = [
    {"type": '"start"', "agent": '"helper"', "message": '"Hi"', "custom_properties": '{"n": 1}'},
    {"type": '"start"', "session_id": SESSION, "message": '"Again"'},
    {"type": '"stop"', "session_id": SESSION},
    {"type": '"resume"', "session_id": SESSION, "after_seq": "0"},
    {"type": '"ping"'},
]
# A valid frame with up to two fields replaced or added, hostile; or a hostile frame altogether.
frames = st.one_of(
    st.tuples(
        st.sampled_from(VALID_FRAMES), st.dictionaries(st.sampled_from(FIELDS), raw_values, max_size=2)
    ).map(lambda parts: raw_object({**parts[0], **parts[1]})),
    raw_bodies.filter(bool),  # (a websocket message can't be empty)
)


async def exchange(ws, frame: str) -> tuple[list[dict], dict | None]:
    """Send `frame` and a ping; read until the pong and the end of every turn the frame started.
    Returns the frames and the close message, if the socket was closed."""
    await ws.send_to(text_data=frame)
    await ws.send_json_to({"type": "ping"})
    received, running, answered = [], set(), False
    while not answered or running:
        output = await ws.receive_output(15)
        if output["type"] == "websocket.close":
            return received, output
        received.append(message := json.loads(output["text"]))
        if message["type"] == "pong":
            answered = True
        elif message["type"] == "session":
            running.add(message["session_id"])
        elif message["type"] in ("result", "error") and message.get("seq") is not None:
            running.discard(message["session_id"])
    return received, None


@given(frame=frames)
@hypothesis_settings(max_examples=60, derandomize=True, deadline=None, database=None,
                     suppress_health_check=list(HealthCheck))  # fmt: skip
async def test_hostile_frames_get_an_answer_and_never_a_1011(frame, user, agent):
    session = await UserAgentSession.objects.filter(owner=user).afirst() or await UserAgentSession.objects.acreate(
        owner=user, agent=agent, title="Fuzzed"
    )
    frame = frame.replace(SESSION, str(session.pk))
    ws = await connect(user)
    received, closed = await exchange(ws, frame)
    if len(frame.encode("utf-8", "surrogatepass")) > settings.ASSISTANT_MAX_FRAME_BYTES:
        assert closed is not None and closed["code"] == 1009, (closed, frame[:200])
        return
    assert closed is None, (closed, frame[:200])
    for message in received:
        if message["type"] == "error" and message["seq"] is None:
            assert message["code"] in REFUSALS, message
        assert message["type"] != "error" or message["code"] != "internal_error", message
    await ws.disconnect()
    # A turn the frame started runs on after the socket: let it end before the next example.
    for _ in range(500):
        if not await Message.objects.filter(session__owner=user, status=Message.Status.STREAMING).aexists():
            break
        await asyncio.sleep(0.02)
    else:
        raise AssertionError("a turn the frame started never ended")


def test_the_protocol_pass_covers_oversized_frames():
    assert len(TOO_LARGE) > settings.ASSISTANT_MAX_FRAME_BYTES


# --- a real daphne process and a real websocket client ------------------------------------------------


def _token_on(base: str) -> str:
    email = f"hostile-{uuid.uuid4().hex[:8]}@example.com"
    credentials = {"email": email, "password": "a hostile passphrase"}
    assert http_json("POST", f"{base}/api/v1/auth/register", {"name": "H", **credentials})[0] == 201
    status, pair = http_json("POST", f"{base}/api/v1/auth/login", credentials)
    assert status == 200
    return pair["access_token"]


async def test_a_real_daphne_closes_an_oversized_frame_with_1009_and_answers_bad_frames(tmp_path):
    with running_server({"DATABASE_URL": database_url_for_children(tmp_path)}) as base:
        token = await asyncio.to_thread(_token_on, base)
        url = base.replace("http://", "ws://") + "/ws/assistant/"

        async def open_socket(origin: str = base):
            return await websockets.connect(url, subprotocols=["jwt", token], origin=origin, open_timeout=10)

        ws = await open_socket()
        for frame in (
            json.dumps({"type": "start", "agent": "nope", "message": NUL}),
            _nested(100_000),
            json.dumps({"type": "stop", "session_id": 10**30}),
        ):
            await ws.send(frame)
            answer = json.loads(await asyncio.wait_for(ws.recv(), 10))
            assert answer["type"] == "error" and answer["code"] == "invalid", answer
        # The longest message, every character escaped, fits in a frame (and is refused for its agent).
        longest = json.dumps({"type": "start", "agent": "nope", "message": "é" * settings.ASSISTANT_MAX_MESSAGE_CHARS})
        await ws.send(longest)
        assert json.loads(await asyncio.wait_for(ws.recv(), 10))["code"] == "not_found"
        await ws.send(json.dumps({"type": "ping"}))
        assert json.loads(await asyncio.wait_for(ws.recv(), 10)) == {"type": "pong"}

        await ws.send(json.dumps({"type": "ping", "pad": "x" * 2**20}))  # 1 MiB
        with pytest.raises(websockets.ConnectionClosed) as closed:
            await asyncio.wait_for(ws.recv(), 10)
        assert closed.value.rcvd is not None, "closed with a close frame, not a dropped connection"
        assert closed.value.rcvd.code == 1009
        assert str(settings.ASSISTANT_MAX_FRAME_BYTES) in closed.value.rcvd.reason

        # The same host on another port (or scheme) is another origin.
        port = int(base.rsplit(":", 1)[1])
        for origin in (f"http://127.0.0.1:{port + 1}", f"https://127.0.0.1:{port}", "http://localhost"):
            with pytest.raises(websockets.InvalidStatus) as refused:
                await open_socket(origin)
            assert refused.value.response.status_code == 403
