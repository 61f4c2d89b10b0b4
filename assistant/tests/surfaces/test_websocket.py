"""The assistant websocket through the real ASGI application (auth middleware, origin check)."""

from __future__ import annotations

import asyncio

import pytest
from asgiref.sync import sync_to_async
from channels.layers import InMemoryChannelLayer
from channels.testing import WebsocketCommunicator
from django.utils import timezone

from agents.models import Message, UserAgentSession
from assistant.models import TurnEvent
from assistant.tests.conftest import ORIGIN, connect, frames_until, texts, token_for, wait_for_message_status
from config.asgi import application
from config.testing.fake_anthropic import HttpError, Reply

pytestmark = pytest.mark.django_db(transaction=True)


async def start(communicator, message="Hello?", **fields):
    await communicator.send_json_to({"type": "start", "message": message, **({"agent": "helper"} | fields)})


async def test_deltas_arrive_in_order_and_add_up_to_the_stored_answer(user, agent, fake):
    fake.script(Reply(text=["The ", "answer ", "is ", "42."], input_tokens=30, output_tokens=8))
    ws = await connect(user)
    await start(ws, "What is the answer?")
    frames = await frames_until(ws, "result")
    await ws.disconnect()

    session_frame = frames[0]
    assert session_frame["type"] == "session" and session_frame["agent"] == "helper"
    assert session_frame["user_message"]["text"] == "What is the answer?"
    seqs = [f["seq"] for f in frames]
    assert seqs == list(range(seqs[0], seqs[0] + len(frames)))
    assert all(f["session_id"] == session_frame["session_id"] for f in frames)
    assert texts(frames) == "The answer is 42."
    result = frames[-1]
    assert result["status"] == "complete" and result["stop_reason"] == "end_turn"
    assert result["usage"]["input_tokens"] == 30 and result["usage"]["output_tokens"] == 8

    answer = await Message.objects.aget(session_id=session_frame["session_id"], role="assistant")
    assert answer.status == "complete" and answer.content == [{"type": "text", "text": "The answer is 42."}]
    assert (answer.input_tokens, answer.output_tokens, answer.stop_reason) == (30, 8, "end_turn")
    stored = [e async for e in TurnEvent.objects.filter(session_id=session_frame["session_id"]).order_by("seq")]
    assert [e.as_frame() for e in stored] == frames
    sent = fake.requests[0].body
    assert sent["system"] == "You are a helpful test agent." and sent["model"] == "claude-test-1"
    assert sent["messages"] == [{"role": "user", "content": [{"type": "text", "text": "What is the answer?"}]}]
    assert fake.requests[0].headers.get("authorization") == "Bearer sk-test-key" or fake.requests[0].headers.get("x-api-key") == "sk-test-key"


async def test_the_next_turn_sends_the_whole_history(user, agent, fake):
    fake.script(Reply(text=["First answer."]), Reply(text=["Second answer."]))
    ws = await connect(user)
    await start(ws, "One")
    session_id = (await frames_until(ws, "result"))[0]["session_id"]
    await ws.send_json_to({"type": "start", "session_id": session_id, "message": "Two"})
    frames = await frames_until(ws, "result")
    await ws.disconnect()
    assert texts(frames) == "Second answer."
    assert fake.requests[1].body["messages"] == [
        {"role": "user", "content": [{"type": "text", "text": "One"}]},
        {"role": "assistant", "content": [{"type": "text", "text": "First answer."}]},
        {"role": "user", "content": [{"type": "text", "text": "Two"}]},
    ]


def stored_usage(message: Message) -> dict[str, int]:
    return {
        "input_tokens": message.input_tokens,
        "output_tokens": message.output_tokens,
        "cache_read_input_tokens": message.cache_read_input_tokens,
        "cache_creation_input_tokens": message.cache_creation_input_tokens,
    }


# Distinct numbers, none zero: a field that was dropped or mixed up shows. The output count of
# message_start is above the estimate of the few words received before a cut (⌈bytes / 4⌉,
# assistant/llm/estimates.py), so the provider's own count is what stays, however many arrived.
CUT_SHORT_USAGE = {
    "input_tokens": 57, "start_output_tokens": 9, "cache_read_input_tokens": 11, "cache_creation_input_tokens": 5,
}  # fmt: skip


async def test_stop_mid_stream_keeps_the_partial_answer_as_stopped_and_closes_upstream(user, agent, fake):
    reply = Reply(text=["Partial ", "answer ", "never ", "finished."], pause_after=2, **CUT_SHORT_USAGE)
    fake.script(reply)
    ws = await connect(user)
    await start(ws)
    first = await frames_until(ws, "text_delta")
    session_id = first[0]["session_id"]
    await asyncio.to_thread(fake.wait_until_paused)
    while texts(first) != "Partial answer ":  # both words sent before the pause have reached the client
        first += await frames_until(ws, "text_delta")
    await ws.send_json_to({"type": "stop", "session_id": session_id})
    frames = first + await frames_until(ws, "result")
    fake.release()
    await asyncio.to_thread(fake.requests[0].finished.wait, 10)
    await ws.disconnect()

    assert texts(frames) == "Partial answer "
    assert frames[-1]["status"] == "stopped" and frames[-1]["stop_reason"] == "stopped"
    assert frames[-1]["usage"] == reply.start_usage(), "the stopped turn reports the usage known so far"
    answer = await wait_for_message_status(session_id, {"stopped"})
    assert answer.content == [{"type": "text", "text": "Partial answer "}]
    assert stored_usage(answer) == reply.start_usage() and answer.input_tokens > 0
    assert fake.requests[0].disconnected, "the upstream stream must be closed on stop"


async def test_an_upstream_error_mid_stream_keeps_the_partial_answer_and_sends_an_error_frame(user, agent, fake):
    reply = Reply(text=["Half ", "an ", "answer"], error_after=2, error_type="overloaded_error", **CUT_SHORT_USAGE)
    fake.script(reply)
    ws = await connect(user)
    await start(ws)
    frames = await frames_until(ws, "error")
    await ws.disconnect()
    assert texts(frames) == "Half an "
    assert frames[-1]["code"] == "overloaded" and frames[-1]["message"]
    answer = await wait_for_message_status(frames[0]["session_id"], {"error"})
    assert answer.content == [{"type": "text", "text": "Half an "}] and answer.error_code == "overloaded"
    assert stored_usage(answer) == reply.start_usage()


@pytest.mark.parametrize(
    ("failure", "code"),
    [(HttpError(429, "rate_limit_error", "slow down"), "rate_limited"), (HttpError(529, "overloaded_error", "busy"), "overloaded"),
     (HttpError(401, "authentication_error", "bad key"), "upstream_auth"), (HttpError(500, "api_error", "boom"), "upstream_error")],
)  # fmt: skip
async def test_upstream_refusals_become_error_frames_with_clear_codes(user, agent, fake, failure, code):
    fake.script(failure)
    ws = await connect(user)
    await start(ws)
    frames = await frames_until(ws, "error")
    await ws.disconnect()
    assert frames[-1]["code"] == code
    answer = await wait_for_message_status(frames[0]["session_id"], {"error"})
    assert answer.content == [] and answer.error_code == code


async def test_a_reconnecting_client_resumes_with_no_gap_and_no_duplicate(user, agent, fake):
    chunks = [f"part{n} " for n in range(8)]
    fake.script(Reply(text=chunks, pause_after=3))
    first = await connect(user)
    await start(first)
    seen = await frames_until(first, "text_delta")
    await asyncio.to_thread(fake.wait_until_paused)
    await asyncio.sleep(0.1)  # let the coalesced deltas before the pause flush
    while not first.output_queue.empty():
        seen.append(await first.receive_json_from())
    await first.disconnect()  # the page reloads mid-answer; the turn goes on
    session_id, last_seq = seen[0]["session_id"], seen[-1]["seq"]

    second = await connect(user)
    await second.send_json_to({"type": "resume", "session_id": session_id, "after_seq": last_seq})
    replayed = []
    while (frame := await second.receive_json_from(5))["type"] != "resumed":
        replayed.append(frame)  # whatever was stored after last_seq before the pause
    assert frame["running"] is True and frame["seq"] == (replayed[-1]["seq"] if replayed else last_seq)
    fake.release()
    rest = replayed + await frames_until(second, "result")
    await second.disconnect()

    all_frames = seen + rest
    seqs = [f["seq"] for f in all_frames]
    assert seqs == list(range(seqs[0], seqs[0] + len(seqs))), "no gap, no duplicate"
    assert texts(all_frames) == "".join(chunks)


async def test_resume_without_a_seq_replays_the_latest_turn(user, agent, fake):
    fake.script(Reply(text=["Old."]), Reply(text=["New ", "answer."]))
    ws = await connect(user)
    await start(ws, "first")
    session_id = (await frames_until(ws, "result"))[0]["session_id"]
    await ws.send_json_to({"type": "start", "session_id": session_id, "message": "second"})
    latest = await frames_until(ws, "result")
    await ws.disconnect()

    again = await connect(user)
    await again.send_json_to({"type": "resume", "session_id": session_id})
    replay = await frames_until(again, "result")
    resumed = await again.receive_json_from()
    await again.disconnect()
    assert replay == latest
    assert resumed == {"type": "resumed", "session_id": session_id, "seq": latest[-1]["seq"], "running": False, "pending_approvals": []}


async def test_the_answer_continues_after_the_socket_closes(user, agent, fake):
    fake.script(Reply(text=["Still ", "going ", "on."], pause_after=1))
    ws = await connect(user)
    await start(ws)
    session_id = (await frames_until(ws, "session"))[0]["session_id"]
    await asyncio.to_thread(fake.wait_until_paused)
    await ws.disconnect()
    fake.release()
    answer = await wait_for_message_status(session_id, {"complete"})
    assert answer.content == [{"type": "text", "text": "Still going on."}]


async def test_a_second_start_while_a_turn_runs_is_refused(user, agent, fake):
    fake.script(Reply(text=["a", "b"], pause_after=1))
    ws = await connect(user)
    await start(ws)
    session_id = (await frames_until(ws, "session"))[0]["session_id"]
    await asyncio.to_thread(fake.wait_until_paused)
    await ws.send_json_to({"type": "start", "session_id": session_id, "message": "again"})
    refusal = None
    while refusal is None:
        frame = await ws.receive_json_from(5)
        if frame["seq"] is None:
            refusal = frame
    fake.release()
    await frames_until(ws, "result")
    await ws.disconnect()
    assert refusal["type"] == "error" and refusal["code"] == "turn_in_progress" and refusal["session_id"] == session_id
    assert await Message.objects.filter(session_id=session_id).acount() == 2


async def test_another_users_session_is_refused_for_start_stop_and_resume(user, other_user, agent, fake):
    ws = await connect(user)
    await start(ws)
    session_id = (await frames_until(ws, "result"))[0]["session_id"]
    await ws.disconnect()

    intruder = await connect(other_user)
    for frame in (
        {"type": "start", "session_id": session_id, "message": "mine now"},
        {"type": "stop", "session_id": session_id},
        {"type": "resume", "session_id": session_id, "after_seq": 0},
    ):
        await intruder.send_json_to(frame)
        answer = await intruder.receive_json_from(5)
        assert answer["type"] == "error" and answer["code"] == "not_found", frame
    assert await intruder.receive_nothing(0.2)
    await intruder.disconnect()
    assert await Message.objects.filter(session_id=session_id).acount() == 2
    assert len(fake.requests) == 1


async def test_a_streaming_answer_left_by_a_dead_process_does_not_block_the_session(user, agent, fake, settings):
    settings.ASSISTANT_STALE_TURN_AFTER = 60
    ws = await connect(user)
    await start(ws)
    session_id = (await frames_until(ws, "result"))[0]["session_id"]
    orphan = await Message.objects.acreate(session_id=session_id, seq=99, role="assistant", content=[], status="streaming")
    await Message.objects.filter(pk=orphan.pk).aupdate(updated_at=timezone.now() - timezone.timedelta(minutes=5))
    await ws.send_json_to({"type": "start", "session_id": session_id, "message": "next"})
    await frames_until(ws, "result")
    await ws.disconnect()
    await orphan.arefresh_from_db()
    assert orphan.status == "error" and orphan.error_code == "interrupted"


@pytest.mark.parametrize(
    ("frame", "code"),
    [({"type": "dance"}, "invalid"), ({"type": "start", "agent": "helper"}, "invalid"), ({"type": "start", "message": "hi"}, "invalid"),
     ({"type": "start", "agent": "no-such-agent", "message": "hi"}, "not_found"), ({"type": "stop", "session_id": "x"}, "invalid"),
     ({"type": "start", "agent": "helper", "message": "   "}, "invalid"), ({"type": "resume", "session_id": 999999}, "not_found"),
     ([1, 2, 3], "invalid")],
)  # fmt: skip
async def test_bad_frames_get_error_frames_and_the_socket_stays_open(user, agent, frame, code):
    ws = await connect(user)
    await ws.send_json_to(frame)
    answer = await ws.receive_json_from(5)
    assert answer["type"] == "error" and answer["code"] == code and answer["seq"] is None and answer["message"]
    await ws.send_json_to({"type": "ping"})
    assert await ws.receive_json_from(5) == {"type": "pong"}
    await ws.disconnect()


async def test_text_that_is_not_json_gets_an_error_frame(user, agent):
    ws = await connect(user)
    await ws.send_to(text_data="{nope")
    assert (await ws.receive_json_from(5))["code"] == "invalid"
    await ws.disconnect()


async def test_a_valid_jwt_subprotocol_is_accepted_and_echoed(user, agent):
    token = await sync_to_async(token_for)(user)
    ws = WebsocketCommunicator(application, "/ws/assistant/", headers=[ORIGIN, (b"host", b"localhost")], subprotocols=["jwt", token])
    connected, subprotocol = await ws.connect(5)
    assert connected and subprotocol == "jwt"
    await ws.send_json_to({"type": "ping"})
    assert await ws.receive_json_from(5) == {"type": "pong"}
    await ws.disconnect()


@pytest.mark.parametrize("token", [None, "not-a-jwt"])
async def test_unauthenticated_sockets_are_closed_with_4401(db, token):
    ws = WebsocketCommunicator(
        application, "/ws/assistant/", headers=[ORIGIN, (b"host", b"localhost")],
        subprotocols=["jwt", token] if token else None,
    )  # fmt: skip
    connected, _ = await ws.connect(5)
    assert connected
    closed = await ws.receive_output(5)
    assert closed == {"type": "websocket.close", "code": 4401}
    await ws.disconnect()


async def test_the_session_cookie_of_the_chat_page_authenticates(user, agent, client):
    await sync_to_async(client.force_login)(user)
    cookie = f"sessionid={client.cookies['sessionid'].value}".encode()
    ws = WebsocketCommunicator(application, "/ws/assistant/", headers=[ORIGIN, (b"host", b"localhost"), (b"cookie", cookie)])
    connected, subprotocol = await ws.connect(5)
    assert connected and subprotocol is None
    await ws.send_json_to({"type": "ping"})
    assert await ws.receive_json_from(5) == {"type": "pong"}
    await ws.disconnect()


async def test_a_foreign_origin_is_rejected(user):
    token = await sync_to_async(token_for)(user)
    ws = WebsocketCommunicator(
        application, "/ws/assistant/", headers=[(b"origin", b"https://evil.example"), (b"host", b"localhost")],
        subprotocols=["jwt", token],
    )  # fmt: skip
    connected, _ = await ws.connect(5)
    assert not connected
    await ws.disconnect()


async def test_the_socket_closes_when_its_token_expires(user, agent):
    from datetime import timedelta

    from rest_framework_simplejwt.tokens import AccessToken

    token = AccessToken.for_user(user)
    token.set_exp(lifetime=timedelta(seconds=1))
    ws = await connect(token=str(token))
    frame = await ws.receive_json_from(5)
    assert frame["type"] == "error" and frame["code"] == "token_expired"
    assert await ws.receive_output(5) == {"type": "websocket.close", "code": 4401}


async def test_sessions_are_owned_by_the_user_who_started_them(user, agent, fake):
    ws = await connect(user)
    await start(ws)
    session_id = (await frames_until(ws, "result"))[0]["session_id"]
    await ws.disconnect()
    session = await UserAgentSession.objects.select_related("owner", "agent").aget(pk=session_id)
    assert session.owner == user and session.agent == agent


async def test_an_access_token_of_the_openid_provider_opens_the_socket_too(oidc_provider, agent, fake):
    token = oidc_provider.mint(sub="auth0|websocket-user")
    ws = await connect(token=token)
    await start(ws, "Hi from a provider user")
    frames = await frames_until(ws, "result")
    await ws.disconnect()
    session = await UserAgentSession.objects.select_related("owner").aget(pk=frames[0]["session_id"])
    assert session.owner.external_id == "auth0|websocket-user" and session.owner.provider == "OIDC"


async def test_the_first_delta_goes_out_at_once_even_right_after_the_session_event(user, agent, fake, settings):
    # A flush interval far longer than the test: any coalescing wait before the first delta shows.
    settings.ASSISTANT_FLUSH_INTERVAL = 30
    fake.script(Reply(text=["First", " rest"], pause_after=1))
    ws = await connect(user)
    await start(ws)
    frames = await frames_until(ws, "text_delta", timeout=5)  # while the model waits at its gate
    fake.release()
    frames += await frames_until(ws, "result", timeout=40)
    await ws.disconnect()

    assert frames[0]["type"] == "session"
    assert texts(frames) == "First rest"


async def test_a_model_connection_dropped_mid_stream_keeps_every_delta_sent_once_and_closes_the_answer(
    user, agent, fake
):
    reply = Reply(text=["Kept ", "too ", "lost"], drop_after=2, **CUT_SHORT_USAGE)
    fake.script(reply)
    ws = await connect(user)
    await start(ws)
    frames = await frames_until(ws, "error")
    await ws.disconnect()

    assert texts(frames) == "Kept too "
    assert frames[-1]["code"] == "upstream_unavailable"
    seqs = [f["seq"] for f in frames]
    assert seqs == list(range(seqs[0], seqs[0] + len(seqs))), "no gap, no duplicate"
    session_id = frames[0]["session_id"]
    answer = await wait_for_message_status(session_id, {"error"})
    assert answer.content == [{"type": "text", "text": "Kept too "}] and answer.error_code == "upstream_unavailable"
    assert stored_usage(answer) == reply.start_usage(), "the cut answer keeps the usage it was sent"
    stored = [e.seq async for e in TurnEvent.objects.filter(session_id=session_id).order_by("seq")]
    assert stored == seqs, "every event sent is stored, once"


class LastFrameLosingLayer(InMemoryChannelLayer):
    """A channel layer that loses every turn's last frame, as a full channel or an expired
    message in Redis would."""

    async def group_send(self, group, message):
        if message.get("type") == "turn.event" and message["event"]["type"] in {"result", "error"}:
            return
        await super().group_send(group, message)


async def test_a_frame_the_channel_layer_loses_is_sent_from_the_database(user, agent, fake, settings):
    settings.CHANNEL_LAYERS = {"default": {"BACKEND": f"{__name__}.LastFrameLosingLayer"}}
    settings.ASSISTANT_GAP_CHECK_INTERVAL = 0.2
    fake.script(Reply(text=["All ", "of ", "it"]))
    ws = await connect(user)
    await start(ws)
    frames = await frames_until(ws, "result", timeout=5)
    await ws.disconnect()

    assert texts(frames) == "All of it"
    assert frames[-1]["status"] == "complete"
    seqs = [f["seq"] for f in frames]
    assert seqs == list(range(seqs[0], seqs[0] + len(seqs))), "no gap, no duplicate"
