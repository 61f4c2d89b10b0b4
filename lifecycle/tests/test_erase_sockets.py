"""An erased user's open websockets close, in every process (accounts' rule for ending sessions)."""

from __future__ import annotations

import pytest
from asgiref.sync import sync_to_async

from assistant.tests.conftest import connect
from lifecycle.erase import user_erase

pytestmark = pytest.mark.django_db(transaction=True)


async def test_erasing_a_user_closes_their_sockets_and_no_one_elses(user, other_user, settings):
    settings.CLAIRE_API_KEY = ""  # no Claire sessions: nothing to delete there
    mine, theirs = await connect(user), await connect(other_user)
    await sync_to_async(user_erase)(user=user)
    frame = await mine.receive_json_from(5)
    assert frame["type"] == "error" and frame["code"] == "session_revoked"
    assert (await mine.receive_output(5))["code"] == 4401
    await theirs.send_json_to({"type": "ping"})
    assert await theirs.receive_json_from(5) == {"type": "pong"}
    await theirs.disconnect()
