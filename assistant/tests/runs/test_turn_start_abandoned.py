"""A client that hangs up while its turn is being planned leaves no answer `streaming` behind (which
would count against the user's running-turn limit until the stale-turn sweep, a minute later): the
planned turn runs (the run API's turns belong to the server) or is stopped at once (`/v1`, whose
client can't come back for it)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import threading

import pytest
from asgiref.sync import sync_to_async
from django.contrib.auth import get_user_model
from django.db import connection, transaction

from accounts.services import api_key_create
from agents.models import UserAgentSession
from assistant.tests.conftest import token_for, wait_for_message_status
from config.asgi import application
from config.testing.asgi import asgi_request_abandoned
from config.testing.fake_anthropic import Reply

pytestmark = pytest.mark.django_db(transaction=True)


@contextlib.contextmanager
def planning_held(user_id: int):
    """Another transaction holds the user's row (and on SQLite the write lock) until the block ends:
    a turn of that user waits in its planning meanwhile."""
    holding, release = threading.Event(), threading.Event()

    def hold() -> None:
        try:
            with transaction.atomic():
                get_user_model().objects.select_for_update().filter(pk=user_id).first()
                holding.set()
                release.wait(20)
        finally:
            connection.close()

    thread = threading.Thread(target=hold)
    thread.start()
    assert holding.wait(10)
    try:
        yield
    finally:
        release.set()
        thread.join(20)


async def abandoned_while_planned(user, path: str, body: dict, authorization: str) -> None:
    with planning_held(user.pk):
        request = asyncio.ensure_future(asgi_request_abandoned(
            application, "POST", path, body=json.dumps(body).encode(), leave_after=0.3,
            headers={"content-type": "application/json", "authorization": authorization},
        ))  # fmt: skip
        await asyncio.sleep(0.6)  # the client has left; the turn is still waiting to be planned
    sent = await request
    assert not [m for m in sent if m["type"] == "http.response.start"], "nothing answered while planning"


async def session_of(user) -> int:
    for _ in range(100):
        session = await UserAgentSession.objects.filter(owner=user).order_by("-pk").afirst()
        if session is not None:
            return session.pk
        await asyncio.sleep(0.05)
    raise AssertionError("the turn was never planned")


async def test_a_v1_client_gone_while_its_turn_was_planned_leaves_it_stopped(user, agent, fake):
    fake.script(Reply(text=["Never", " read."]))
    key = (await sync_to_async(api_key_create)(user=user, name="k")).key
    body = {"model": agent.slug, "messages": [{"role": "user", "content": "Hi"}]}
    await abandoned_while_planned(user, "/v1/chat/completions", body, f"Bearer {key}")
    message = await wait_for_message_status(await session_of(user), {"stopped", "complete", "error"})
    assert message.status == "stopped"


async def test_a_run_api_client_gone_while_its_turn_was_planned_leaves_it_running_to_the_end(user, agent, fake):
    fake.script(Reply(text=["Stored", " all the same."]))
    token = await sync_to_async(token_for)(user)
    await abandoned_while_planned(user, f"/api/v1/agents/{agent.slug}/run", {"message": "Hi"}, f"Bearer {token}")
    message = await wait_for_message_status(await session_of(user), {"stopped", "complete", "error"})
    assert message.status == "complete" and message.text == "Stored all the same."
