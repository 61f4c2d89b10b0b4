"""The ends of turns: at most ASSISTANT_MAX_CONCURRENT_TURNS_PER_USER run at once per user, and a
turn whose process died is closed as `interrupted` by the periodic sweep."""

from __future__ import annotations

import asyncio
import threading

import pytest
from asgiref.sync import sync_to_async
from django.db import OperationalError, connections
from django.utils import timezone

from agents.models import Message, UserAgentSession
from assistant import runs
from assistant.models import TurnEvent
from assistant.runs.sweeps import stale_turns_settle, stale_turns_sweep
from assistant.tests.conftest import connect
from assistant.tests.surfaces.test_sse import PATH, client_for
from config.testing.fake_anthropic import Reply

pytestmark = pytest.mark.django_db(transaction=True)

SLOW = dict(text=["slow "] * 20, delay=0.1)  # ~2 s of answer: the turn stays running meanwhile


# --- the per-user limit -----------------------------------------------------------------------


async def test_a_burst_of_starts_runs_at_most_the_limit_and_refuses_the_rest(user, other_user, agent, fake, settings):
    settings.ASSISTANT_MAX_CONCURRENT_TURNS_PER_USER = 3
    fake.script(*[Reply(**SLOW) for _ in range(4)])
    ws = await connect(user)
    for n in range(8):
        await ws.send_json_to({"type": "start", "agent": "helper", "message": f"question {n}"})
    frames = []
    while sum(f["type"] == "result" for f in frames) < 3 or sum(f.get("code") == "too_many_turns" for f in frames) < 5:
        frames.append(await ws.receive_json_from(15))

    # Another user is not affected by this one's turns.
    bystander = await connect(other_user)
    await bystander.send_json_to({"type": "start", "agent": "helper", "message": "mine"})
    assert (await bystander.receive_json_from(5))["type"] == "session"
    while (await bystander.receive_json_from(15))["type"] != "result":
        pass  # no turn is left running when the test's event loop closes
    await bystander.disconnect()
    await ws.disconnect()

    started = [f for f in frames if f["type"] == "session"]
    refused = [f for f in frames if f["type"] == "error" and f["seq"] is None]
    assert len(started) == 3 and len(refused) == 5
    assert all(f["code"] == "too_many_turns" and "at most 3" in f["message"] for f in refused)
    assert len(fake.requests) == 4, "three model calls for the user, one for the bystander"
    assert await UserAgentSession.objects.filter(owner=user).acount() == 3, "refused starts leave no session"


async def test_a_finished_turn_frees_its_place(user, agent, fake, settings):
    settings.ASSISTANT_MAX_CONCURRENT_TURNS_PER_USER = 1
    fake.script(Reply(text=["one"]), Reply(text=["two"]))
    ws = await connect(user)
    for n in range(2):
        await ws.send_json_to({"type": "start", "agent": "helper", "message": f"question {n}"})
        while (frame := await ws.receive_json_from(5))["type"] != "result":
            assert frame["type"] != "error", frame
    await ws.disconnect()
    assert len(fake.requests) == 2


async def test_the_limit_holds_for_the_chat_pages_cookie_sockets_too(user, agent, fake, settings):
    from assistant.tests.surfaces.test_socket_revocation import cookie_socket

    settings.ASSISTANT_MAX_CONCURRENT_TURNS_PER_USER = 1
    fake.script(Reply(text=["held ", "open"], pause_after=1))
    ws, _ = await cookie_socket(user)
    await ws.send_json_to({"type": "start", "agent": "helper", "message": "first"})
    assert (await ws.receive_json_from(5))["type"] == "session"
    await asyncio.to_thread(fake.wait_until_paused)
    await ws.send_json_to({"type": "start", "agent": "helper", "message": "second"})
    frames = []
    while not any(f.get("code") == "too_many_turns" for f in frames):
        frames.append(await ws.receive_json_from(5))
    fake.release()
    while frames[-1]["type"] != "result":
        frames.append(await ws.receive_json_from(10))
    await ws.disconnect()
    assert len(fake.requests) == 1


def test_concurrent_starts_on_separate_connections_never_pass_the_limit(user, agent, settings):
    """Each thread has its own database connection and transaction, as separate processes would:
    the count holds because the user's starts are serialised in the database."""
    settings.ASSISTANT_MAX_CONCURRENT_TURNS_PER_USER = 3
    attempts = 8
    barrier = threading.Barrier(attempts)
    outcomes: list[str] = []

    def begin(n: int) -> None:
        barrier.wait()
        try:
            runs.turn_begin(user=user, text=f"question {n}", agent_slug="helper")
            outcomes.append("started")
        except runs.TurnRefused as refused:
            outcomes.append(refused.code)
        except OperationalError:  # SQLite's writer lock timing out: not started either
            outcomes.append("locked")
        finally:
            connections.close_all()

    threads = [threading.Thread(target=begin, args=(n,)) for n in range(attempts)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if connections["default"].vendor == "sqlite":
        # The test database is SQLite in memory (shared cache), where a writer waiting for the lock
        # fails at once instead of waiting: some starts fail that way, none may pass the limit.
        assert 1 <= outcomes.count("started") <= 3 and set(outcomes) <= {"started", "too_many_turns", "locked"}, outcomes
    else:
        assert sorted(outcomes) == ["started"] * 3 + ["too_many_turns"] * 5, outcomes
    assert Message.objects.filter(session__owner=user, status="streaming").count() == outcomes.count("started")


async def test_the_sse_endpoint_answers_429_past_the_limit(user, code_agent, fake, settings):
    settings.ASSISTANT_MAX_CONCURRENT_TURNS_PER_USER = 1
    fake.script(Reply(text=["held ", "open"], pause_after=1))
    ws = await connect(user)
    await ws.send_json_to({"type": "start", "agent": code_agent.slug, "message": "hold this"})
    assert (await ws.receive_json_from(5))["type"] == "session"
    await asyncio.to_thread(fake.wait_until_paused)

    client = await client_for(user)
    response = await client.post(PATH, {"prompt": "one more"}, content_type="application/json")
    fake.release()
    while (await ws.receive_json_from(10))["type"] != "result":
        pass
    await ws.disconnect()
    assert response.status_code == 429
    detail = response.json()["detail"]
    assert detail["code"] == "too_many_turns" and detail["message"] and detail["request_id"]


# --- turns left running by a dead process ----------------------------------------------------


def make_orphaned_turn(user, agent, *, minutes_ago: float) -> Message:
    """A session whose last answer is `streaming` and was last written `minutes_ago`."""
    session = UserAgentSession.objects.create(owner=user, agent=agent, title="orphan")
    Message.objects.create(session=session, seq=1, role="user", content=[{"type": "text", "text": "hi"}])
    TurnEvent.objects.create(session=session, seq=1, type="session", data={"agent": agent.slug})
    TurnEvent.objects.create(session=session, seq=2, type="text_delta", data={"text": "half an"})
    message = Message.objects.create(session=session, seq=2, role="assistant", content=[], status="streaming")
    when = timezone.now() - timezone.timedelta(minutes=minutes_ago)
    Message.objects.filter(pk=message.pk).update(updated_at=when)
    return message


orphaned_turn = sync_to_async(make_orphaned_turn)


async def test_the_sweep_closes_stale_turns_as_interrupted_and_tells_watchers(user, agent, settings):
    settings.ASSISTANT_STALE_TURN_AFTER = 60
    stale = await orphaned_turn(user, agent, minutes_ago=5)
    live = await orphaned_turn(user, agent, minutes_ago=0.1)
    watcher = await connect(user)
    await watcher.send_json_to({"type": "resume", "session_id": stale.session_id, "after_seq": 2})
    assert await watcher.receive_json_from(5) == {"type": "resumed", "session_id": stale.session_id, "seq": 2, "running": True, "pending_approvals": []}

    assert await stale_turns_sweep() == 1
    final = await watcher.receive_json_from(5)
    assert final == {"type": "error", "session_id": stale.session_id, "seq": 3, "code": "interrupted",
                     "message": "The server handling this answer stopped before it finished."}  # fmt: skip

    # stop and resume answer at once: nothing is running any more
    await watcher.send_json_to({"type": "stop", "session_id": stale.session_id})
    refusal = await watcher.receive_json_from(5)
    assert refusal["type"] == "error" and refusal["code"] == "no_turn" and refusal["seq"] is None
    await watcher.send_json_to({"type": "resume", "session_id": stale.session_id})
    replay = [await watcher.receive_json_from(5) for _ in range(4)]
    assert [f["type"] for f in replay] == ["session", "text_delta", "error", "resumed"]
    assert replay[-1]["running"] is False
    await watcher.disconnect()

    await stale.arefresh_from_db()
    await live.arefresh_from_db()
    assert (stale.status, stale.error_code) == ("error", "interrupted")
    assert live.status == "streaming", "a turn written to recently is left alone"
    assert await stale_turns_sweep() == 0, "a settled turn is settled once"


def test_settling_twice_at_once_settles_once(user, agent, settings):
    settings.ASSISTANT_STALE_TURN_AFTER = 60
    stale = make_orphaned_turn(user, agent, minutes_ago=5)
    results: list[int] = []
    barrier = threading.Barrier(2)

    def sweep() -> None:
        barrier.wait()
        try:
            results.append(len(stale_turns_settle()))
        except OperationalError:
            results.append(0)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=sweep) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(results) == [0, 1]
    assert TurnEvent.objects.filter(session_id=stale.session_id, type="error").count() == 1
