"""The turn writer: every running turn's flushes stored many to a transaction (group commit), each
still stored before it is published, in order, and a failed write failing only its own turn."""

from __future__ import annotations

import asyncio
import logging

import pytest
from channels.db import database_sync_to_async
from django.db import IntegrityError

from agents import services as agent_services
from agents.models import Message
from assistant import runs
from assistant.models import TurnEvent
from assistant.runs.writer import TurnWrite, TurnWriter
from assistant.tests.conftest import connect, frames_until, texts, wait_for_message_status
from config.testing.fake_anthropic import Reply
from config.testing.statements import statements_recorded

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def statements():
    """The SQL run during the test, on whichever thread (the writer's run on the async lanes)."""
    with statements_recorded() as seen:
        yield seen


def streaming_message(user, agent) -> Message:
    session = agent_services.session_create(owner=user, agent=agent)
    return agent_services.message_append(
        session=session, role=Message.Role.ASSISTANT, content=[], status=Message.Status.STREAMING
    )


def write(message: Message, *seqs: int, **fields) -> TurnWrite:
    events = [(seq, "text_delta", {"text": f"#{seq}"}) for seq in seqs]
    return TurnWrite(message.session_id, events, message.pk, fields)


async def stored(message: Message) -> list[int]:
    return [e.seq async for e in TurnEvent.objects.filter(session_id=message.session_id).order_by("seq")]


async def test_writes_queued_together_are_stored_with_one_insert_and_one_update_per_message(user, agent, statements):
    first, second = [await database_sync_to_async(streaming_message)(user, agent) for _ in range(2)]
    writer = TurnWriter()
    statements.clear()
    await asyncio.gather(
        writer.write(write(first, 1, 2, content=[{"type": "text", "text": "a"}])),
        writer.write(write(second, 1)),
        writer.write(write(first, 3, content=[{"type": "text", "text": "ab"}], status=Message.Status.COMPLETE)),
    )

    assert await stored(first) == [1, 2, 3] and await stored(second) == [1]
    inserts = [sql for sql in statements if sql.startswith('INSERT INTO "assistant_turnevent"')]
    updates = [sql for sql in statements if sql.startswith('UPDATE "agents_message"')]
    assert len(inserts) == 1, "one insert for every queued event"
    assert len(updates) == 1, "one update per message, its queued fields merged"
    await first.arefresh_from_db()
    assert first.content == [{"type": "text", "text": "ab"}] and first.status == Message.Status.COMPLETE


async def test_a_write_that_fails_fails_only_its_own_caller_and_its_sessions_later_writes(user, agent, caplog):
    good, bad, other = [await database_sync_to_async(streaming_message)(user, agent) for _ in range(3)]
    await TurnEvent.objects.acreate(session_id=bad.session_id, seq=2, type="text_delta", data={})  # seq 2 is taken
    writer = TurnWriter()
    with caplog.at_level(logging.WARNING, logger="assistant.runs.writer"):
        results = await asyncio.wait_for(
            asyncio.gather(
                writer.write(write(good, 1, 2)),
                writer.write(write(bad, 1, 2)),
                writer.write(write(other, 1)),
                writer.write(write(bad, 3)),  # after the failed one: stored, it would leave a gap
                return_exceptions=True,
            ),
            10,
        )

    assert results[0] is None and results[2] is None
    assert isinstance(results[1], IntegrityError) and results[3] is results[1]
    assert await stored(good) == [1, 2] and await stored(other) == [1]
    assert await stored(bad) == [2], "none of the failed session's writes are stored"
    assert "A batch of 4 turn writes failed" in caplog.text


async def test_concurrent_turns_are_stored_and_published_in_order_with_no_gap_or_duplicate(user, agent, fake, settings):
    count = 6
    settings.ASSISTANT_MAX_CONCURRENT_TURNS_PER_USER = count  # one user's six turns at once
    fake.default = Reply(text=[f"part{n} " for n in range(8)], delay=0.01)
    sockets = [await connect(user) for _ in range(count)]

    async def turn(ws) -> list[dict]:
        await ws.send_json_to({"type": "start", "agent": "helper", "message": "Go"})
        frames = []
        while not frames or frames[-1]["type"] not in {"result", "error"}:
            frame = await ws.receive_json_from(10)
            if frame["type"] in {"result", "error"}:
                # The socket that started a turn gets its deltas before they are written; its last
                # event only once everything before it is stored.
                stored = TurnEvent.objects.filter(session_id=frame["session_id"], seq__lte=frame["seq"])
                assert await stored.acount() == frame["seq"] - frames[0]["seq"] + 1
            frames.append(frame)
        await ws.disconnect()
        return frames

    results = await asyncio.gather(*(turn(ws) for ws in sockets))

    assert len({frames[0]["session_id"] for frames in results}) == count
    for frames in results:
        seqs = [f["seq"] for f in frames]
        assert seqs == list(range(seqs[0], seqs[0] + len(seqs))), "no gap, no duplicate"
        assert texts(frames) == "".join(f"part{n} " for n in range(8))
        assert frames[-1]["type"] == "result" and frames[-1]["status"] == "complete"
        session_id = frames[0]["session_id"]
        events = [e.as_frame() async for e in TurnEvent.objects.filter(session_id=session_id).order_by("seq")]
        assert events == frames
        answer = await wait_for_message_status(session_id, {"complete"})
        assert answer.content == [{"type": "text", "text": texts(frames)}]


async def test_a_socket_watching_another_sockets_turn_holds_only_stored_events(user, agent, fake):
    fake.default = Reply(text=[f"part{n} " for n in range(8)], delay=0.02)
    starter, watcher = await connect(user), await connect(user)
    await starter.send_json_to({"type": "start", "agent": "helper", "message": "Go"})
    session_id = (await starter.receive_json_from(10))["session_id"]
    await watcher.send_json_to({"type": "resume", "session_id": session_id})
    frames = []
    while not frames or frames[-1]["type"] not in {"result", "error"}:
        frame = await watcher.receive_json_from(10)
        if frame["type"] == "resumed":
            continue
        # Persist, then publish: whatever a watcher holds is already in the database.
        assert await TurnEvent.objects.filter(session_id=session_id, seq=frame["seq"]).aexists(), frame
        frames.append(frame)
    await starter.disconnect()
    await watcher.disconnect()
    assert texts(frames) == "".join(f"part{n} " for n in range(8))


async def test_a_turn_whose_write_fails_ends_as_an_error_and_the_others_complete(user, agent, fake, settings):
    settings.ASSISTANT_MAX_CONCURRENT_TURNS_PER_USER = 4  # four turns of one user at once
    fake.script(Reply(text=["never ", "stored"], pause_after=0))
    fake.default = Reply(text=[f"part{n} " for n in range(6)], delay=0.01)
    doomed = await connect(user)
    await doomed.send_json_to({"type": "start", "agent": "helper", "message": "Go"})
    session_frame = (await frames_until(doomed, "session"))[-1]
    session_id = session_frame["session_id"]
    await asyncio.to_thread(fake.wait_until_paused)
    # Another writer took the seq the turn's first delta will have: that write fails.
    taken = session_frame["seq"] + 1
    await TurnEvent.objects.acreate(session_id=session_id, seq=taken, type="text_delta", data={"text": "x"})

    others = [await connect(user) for _ in range(3)]
    for ws in others:
        await ws.send_json_to({"type": "start", "agent": "helper", "message": "Go"})
    fake.release()
    doomed_frames = await frames_until(doomed, "error")
    other_frames = [await frames_until(ws, "result") for ws in others]
    for ws in (doomed, *others):
        await ws.disconnect()

    assert doomed_frames[-1]["code"] == "internal_error"
    answer = await wait_for_message_status(session_id, {"error"})
    assert answer.error_code == "internal_error"
    for frames in other_frames:
        assert texts(frames) == "".join(f"part{n} " for n in range(6)) and frames[-1]["status"] == "complete"
        stored_events = TurnEvent.objects.filter(session_id=frames[0]["session_id"]).order_by("seq")
        assert [e.as_frame() async for e in stored_events] == frames


async def test_a_turn_cancelled_by_shutdown_stores_its_end_as_interrupted(user, agent, fake):
    fake.script(Reply(text=["Half ", "way"], pause_after=1))
    ws = await connect(user)
    await ws.send_json_to({"type": "start", "agent": "helper", "message": "Go"})
    session_id = (await frames_until(ws, "text_delta"))[0]["session_id"]
    await asyncio.to_thread(fake.wait_until_paused)
    runner = runs.running_turn(session_id)
    runner.task.cancel()  # what the event loop does to its tasks when the process stops
    with pytest.raises(asyncio.CancelledError):
        await runner.task
    fake.release()
    await ws.disconnect()

    answer = await wait_for_message_status(session_id, {"error"})
    assert answer.error_code == "interrupted" and answer.content == [{"type": "text", "text": "Half "}]
    last = await TurnEvent.objects.filter(session_id=session_id).order_by("-seq").afirst()
    assert last.type == "error" and last.data["code"] == "interrupted"
