"""Open websockets close when their session ends: a password change, a deactivation or a deletion
closes every socket of the user; a cookie logout closes that browser session's sockets only."""

from __future__ import annotations

import pytest
from asgiref.sync import sync_to_async
from channels.testing import WebsocketCommunicator
from django.test import Client

from accounts import services
from accounts.models import User
from assistant.tests.conftest import ORIGIN, connect
from config.asgi import application
from conftest import TEST_PASSWORD

pytestmark = pytest.mark.django_db(transaction=True)


async def assert_closed_as_revoked(ws, reason: str) -> None:
    frame = await ws.receive_json_from(5)
    assert frame["type"] == "error" and frame["code"] == "session_revoked" and frame["message"] == reason
    assert await ws.receive_output(5) == {"type": "websocket.close", "code": 4401, "reason": reason}


async def assert_still_open(ws) -> None:
    await ws.send_json_to({"type": "ping"})
    assert await ws.receive_json_from(5) == {"type": "pong"}


async def cookie_socket(user) -> tuple[WebsocketCommunicator, Client]:
    browser = Client()
    await sync_to_async(browser.force_login)(user)
    cookie = f"sessionid={browser.cookies['sessionid'].value}".encode()
    ws = WebsocketCommunicator(application, "/ws/assistant/", headers=[ORIGIN, (b"host", b"localhost"), (b"cookie", cookie)])
    connected, _ = await ws.connect(5)
    assert connected
    return ws, browser


async def test_a_password_change_closes_every_socket_of_the_user_and_no_one_elses(user, other_user):
    token_socket = await connect(user)
    cookie_ws, _ = await cookie_socket(user)
    bystander = await connect(other_user)

    def change() -> None:
        services.user_password_change(user=User.objects.get(pk=user.pk), current_password=TEST_PASSWORD,
                                      new_password="a brand-new passphrase 77")  # fmt: skip

    await sync_to_async(change)()
    await assert_closed_as_revoked(token_socket, "Password changed.")
    await assert_closed_as_revoked(cookie_ws, "Password changed.")
    await assert_still_open(bystander)
    await bystander.disconnect()


async def test_deactivating_a_user_closes_their_sockets(user):
    ws = await connect(user)

    def deactivate() -> None:
        fresh = User.objects.get(pk=user.pk)
        fresh.is_active = False
        fresh.save()

    await sync_to_async(deactivate)()
    await assert_closed_as_revoked(ws, "Account deactivated.")


async def test_a_user_deactivated_where_their_sockets_closing_cant_reach_runs_no_more_turns(user, agent, fake):
    # Attack (issue 33, 10): deactivated from another process (`manage.py shell` with the in-memory layer:
    # here, a write no signal sees), open token sockets went on running complete turns.
    ws = await connect(user)
    await User.objects.filter(pk=user.pk).aupdate(is_active=False)
    await ws.send_json_to({"type": "start", "agent": agent.slug, "message": "still here?"})
    frame = await ws.receive_json_from(5)
    assert frame["type"] == "error" and frame["code"] == "account_inactive"
    assert (await ws.receive_output(5))["code"] == 4401
    assert fake.requests == [], "the model was called for a deactivated user"


async def test_deleting_a_user_closes_their_sockets(user):
    ws = await connect(user)
    await sync_to_async(lambda: User.objects.filter(pk=user.pk).delete())()
    await assert_closed_as_revoked(ws, "Account deleted.")


async def test_a_cookie_logout_closes_that_browser_sessions_sockets_only(user):
    signed_out, browser = await cookie_socket(user)
    other_browser_ws, _ = await cookie_socket(user)
    token_ws = await connect(user)

    response = await sync_to_async(browser.post)("/accounts/logout/")
    assert response.status_code == 302
    await assert_closed_as_revoked(signed_out, "Signed out.")
    await assert_still_open(other_browser_ws)
    await assert_still_open(token_ws)
    await other_browser_ws.disconnect()
    await token_ws.disconnect()


async def test_a_rename_leaves_sockets_open(user):
    ws = await connect(user)

    def rename() -> None:
        fresh = User.objects.get(pk=user.pk)
        fresh.name = "Renamed"
        fresh.save()

    await sync_to_async(rename)()
    await assert_still_open(ws)
    await ws.disconnect()
