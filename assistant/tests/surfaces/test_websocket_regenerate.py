"""Regenerate the last answer and edit the last message over the websocket (the chat page's buttons):
the session's last exchange is removed and the turn runs again, with the same or the new text."""

from __future__ import annotations

import pytest

from agents.models import Message, UserAgentSession
from assistant.tests.conftest import connect, frames_until, texts
from config.testing.fake_anthropic import Reply

pytestmark = pytest.mark.django_db(transaction=True)


async def two_turns(ws, fake) -> int:
    """A session with two exchanges ("One" → "First.", "Two" → "Second."); its id."""
    fake.script(Reply(text=["First."]), Reply(text=["Second."]))
    await ws.send_json_to({"type": "start", "agent": "helper", "message": "One"})
    session_id = (await frames_until(ws, "result"))[0]["session_id"]
    await ws.send_json_to({"type": "start", "session_id": session_id, "message": "Two"})
    await frames_until(ws, "result")
    return session_id


async def stored(session_id: int) -> list[tuple[str, str]]:
    return [(m.role, m.text) async for m in Message.objects.filter(session_id=session_id).order_by("seq")]


async def test_regenerate_runs_the_last_message_again_in_place_of_its_answer(user, agent, fake):
    ws = await connect(user)
    session_id = await two_turns(ws, fake)
    removed_seq = (await Message.objects.filter(session_id=session_id, role="user").order_by("-seq").afirst()).seq
    fake.script(Reply(text=["Second, again."]))

    await ws.send_json_to({"type": "regenerate", "session_id": session_id})
    frames = await frames_until(ws, "result")
    await ws.disconnect()

    assert frames[0]["type"] == "session" and frames[0]["replaced_from_seq"] == removed_seq
    assert frames[0]["user_message"]["text"] == "Two" and frames[0]["user_message"]["seq"] > removed_seq
    assert texts(frames) == "Second, again."
    assert await stored(session_id) == [("user", "One"), ("assistant", "First."), ("user", "Two"),
                                        ("assistant", "Second, again.")]  # fmt: skip
    assert fake.requests[-1].body["messages"] == [
        {"role": "user", "content": [{"type": "text", "text": "One"}]},
        {"role": "assistant", "content": [{"type": "text", "text": "First."}]},
        {"role": "user", "content": [{"type": "text", "text": "Two"}]},
    ]


async def test_edit_replaces_the_last_message_and_the_model_sees_only_the_new_text(user, agent, fake):
    ws = await connect(user)
    session_id = await two_turns(ws, fake)
    fake.script(Reply(text=["Three it is."]))

    await ws.send_json_to({"type": "edit", "session_id": session_id, "message": "  Three  "})
    frames = await frames_until(ws, "result")
    await ws.disconnect()

    assert frames[0]["user_message"]["text"] == "Three" and "replaced_from_seq" in frames[0]
    assert await stored(session_id) == [("user", "One"), ("assistant", "First."), ("user", "Three"),
                                        ("assistant", "Three it is.")]  # fmt: skip
    assert [m["content"][0]["text"] for m in fake.requests[-1].body["messages"]] == ["One", "First.", "Three"]


async def test_edit_and_regenerate_refuse_bad_input_and_other_peoples_sessions(user, other_user, agent, fake):
    ws = await connect(user)
    session_id = await two_turns(ws, fake)
    before = await stored(session_id)

    await ws.send_json_to({"type": "edit", "session_id": session_id, "message": "   "})
    assert (await ws.receive_json_from(10))["code"] == "invalid"
    await ws.send_json_to({"type": "edit", "session_id": session_id})
    assert (await ws.receive_json_from(10))["message"] == "`message` must be a string."
    await ws.send_json_to({"type": "regenerate"})
    assert (await ws.receive_json_from(10))["code"] == "invalid"
    await ws.disconnect()

    intruder = await connect(other_user)  # someone else's session: as if it didn't exist, and untouched
    await intruder.send_json_to({"type": "regenerate", "session_id": session_id})
    assert (await intruder.receive_json_from(10))["code"] == "not_found"
    await intruder.send_json_to({"type": "edit", "session_id": session_id, "message": "Mine now"})
    assert (await intruder.receive_json_from(10))["code"] == "not_found"
    await intruder.disconnect()
    assert await stored(session_id) == before
    assert len(fake.requests) == 2


async def test_regenerate_in_a_session_without_a_message_is_refused(user, agent, fake):
    session = await UserAgentSession.objects.acreate(owner=user, agent=agent, title="")
    ws = await connect(user)
    await ws.send_json_to({"type": "regenerate", "session_id": session.pk})
    refusal = (await ws.receive_json_from(10))
    await ws.disconnect()
    assert refusal["code"] == "not_found" and refusal["session_id"] == session.pk
    assert len(fake.requests) == 0


async def test_a_session_made_without_a_title_takes_its_first_message(user, agent, fake):
    session = await UserAgentSession.objects.acreate(owner=user, agent=agent, title="")
    fake.script(Reply(text=["Hi."]))
    ws = await connect(user)
    await ws.send_json_to({"type": "start", "session_id": session.pk, "message": "Summarise the uploaded file"})
    frames = await frames_until(ws, "result")
    await ws.disconnect()
    assert frames[0]["title"] == "Summarise the uploaded file"
    assert (await UserAgentSession.objects.aget(pk=session.pk)).title == "Summarise the uploaded file"


IMAGE = {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "iVBORw0KGgo="}}


async def with_an_image(session_id: int, *, text: str | None) -> None:
    """The session's last message of the user's as a /v1 client sends it: an image, with `text` or none."""
    last = await Message.objects.filter(session_id=session_id, role="user").order_by("-seq").afirst()
    last.content = ([{"type": "text", "text": text}] if text else []) + [IMAGE]
    await last.asave(update_fields=["content"])


@pytest.mark.parametrize("frame, text", [({"type": "regenerate"}, "Two"), ({"type": "edit", "message": "Three"}, "Three")])
async def test_a_message_with_an_image_asked_again_still_shows_the_model_its_image(user, agent, fake, frame, text):
    # Regenerate used to re-ask with the text alone: the stored image was deleted with the old exchange.
    ws = await connect(user)
    session_id = await two_turns(ws, fake)
    await with_an_image(session_id, text="Two")
    fake.script(Reply(text=["Again."]))

    await ws.send_json_to({**frame, "session_id": session_id})
    frames = await frames_until(ws, "result")
    await ws.disconnect()

    assert frames[0]["user_message"] == {"seq": frames[0]["user_message"]["seq"], "text": text, "images": 1}
    asked = [{"type": "text", "text": text}, IMAGE]
    assert fake.requests[-1].body["messages"][-1] == {"role": "user", "content": asked}
    last_question = await Message.objects.filter(session_id=session_id, role="user").order_by("-seq").afirst()
    assert last_question.content == asked


async def test_an_image_only_message_is_the_one_regenerated_not_the_message_before_it(user, agent, fake):
    # It has no text: it used to be passed over, and the exchange before it was removed and run again.
    ws = await connect(user)
    session_id = await two_turns(ws, fake)
    await with_an_image(session_id, text=None)
    fake.script(Reply(text=["A picture."]))

    await ws.send_json_to({"type": "regenerate", "session_id": session_id})
    frames = await frames_until(ws, "result")
    await ws.disconnect()

    assert frames[0]["user_message"]["text"] == "" and frames[0]["user_message"]["images"] == 1
    assert await stored(session_id) == [("user", "One"), ("assistant", "First."), ("user", ""),
                                        ("assistant", "A picture.")]  # fmt: skip
    assert fake.requests[-1].body["messages"][-1] == {"role": "user", "content": [IMAGE]}
