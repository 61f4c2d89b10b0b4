"""Closing a user's open websockets from any process when their session ends.

An authenticated socket joins its user's channel-layer group and, when it came with the session cookie,
its Django session's group and, with a personal API key, that key's group (`socket_groups`);
`sockets_close` sends those groups an `auth.revoked` message, on which the consumer closes with 4401
and the reason. Groups live in the channel layer, so this reaches every process (with Redis).
"""

from __future__ import annotations

import asyncio
import hashlib

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer

from config.startup import serving_loop

JWT_SUBPROTOCOL = "jwt"
REVOKED_MESSAGE_TYPE = "auth.revoked"


def user_socket_group(user_id: int) -> str:
    return f"auth.user.{user_id}"


def api_key_socket_group(api_key_id: int) -> str:
    return f"auth.apikey.{api_key_id}"


def browser_session_socket_group(session_key: str) -> str:
    # Hashed: group names are stored in Redis, and a session key is a credential.
    return f"auth.session.{hashlib.sha256(session_key.encode()).hexdigest()[:40]}"


def socket_groups(scope) -> list[str]:
    """The groups an authenticated socket joins, so it can be closed when its session ends."""
    groups = [user_socket_group(scope["user"].pk)]
    if scope.get("api_key_id") is not None:  # revoking the key closes the socket
        groups.append(api_key_socket_group(scope["api_key_id"]))
    session = scope.get("session")
    if token_from_subprotocols(scope.get("subprotocols") or []) is None and session is not None and session.session_key:
        groups.append(browser_session_socket_group(session.session_key))
    return groups


def sockets_close(*, group: str, reason: str) -> None:
    """Close every websocket in `group`, in every process (sync callers: views, admin, commands)."""
    layer = get_channel_layer()
    if layer is None:
        return
    message = {"type": REVOKED_MESSAGE_TYPE, "reason": reason}
    loop = serving_loop()
    try:
        on_loop = asyncio.get_running_loop() is loop
    except RuntimeError:
        on_loop = False
    if on_loop:
        loop.create_task(layer.group_send(group, message))
    elif loop is not None and loop.is_running():
        # Inside a server process (a WSGI thread): send from the server's loop, which the in-memory
        # layer's queues belong to (channels-redis would work from any loop).
        asyncio.run_coroutine_threadsafe(layer.group_send(group, message), loop).result(timeout=10)
    else:
        async_to_sync(layer.group_send)(group, message)


def token_from_subprotocols(subprotocols: list[str]) -> str | None:
    if len(subprotocols) >= 2 and subprotocols[0] == JWT_SUBPROTOCOL:
        return subprotocols[1]
    return None
