"""Websocket authentication: the Django session cookie (the chat page) or an access token (or a
personal API key, `cdk_…`) sent as the subprotocols `["jwt", "<token>"]` (browsers can't set
headers on a websocket).

Sets `scope["user"]` and, for tokens, `scope["auth_expires_at"]` (a UNIX time) so a consumer can
close the socket when the token it was opened with expires. A consumer that accepts a token
connection must answer with the subprotocol "jwt", or browsers fail the handshake.

Ending sessions reaches open sockets through channel-layer groups, so it works across processes:
an authenticated socket joins its user's group and, when it came with the session cookie, its
Django session's group (`socket_groups`); `sockets_close` sends those groups an `auth.revoked`
message, on which the consumer closes with 4401 and the reason.
"""

from __future__ import annotations

import asyncio
import hashlib

from asgiref.sync import async_to_sync
from channels.auth import AuthMiddlewareStack
from channels.db import database_sync_to_async
from channels.layers import get_channel_layer
from django.contrib.auth.models import AnonymousUser

from accounts.authentication import api_key_for_socket, user_for_access_token

JWT_SUBPROTOCOL = "jwt"
API_KEY_PREFIX = "cdk_"  # accounts.services.API_KEY_PREFIX (not imported: services imports this module)
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
    from config.startup import serving_loop

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


class _TokenAuthMiddleware:
    def __init__(self, inner):
        self.inner = inner

    async def __call__(self, scope, receive, send):
        token = token_from_subprotocols(scope.get("subprotocols") or [])
        if token is not None and token.startswith(API_KEY_PREFIX):
            # A personal API key in the token's place (tools that hold a key, not a JWT).
            user, expires_at, api_key_id = await database_sync_to_async(api_key_for_socket)(token)
            scope = {**scope, "user": user or AnonymousUser(), "auth_expires_at": expires_at, "api_key_id": api_key_id}
        elif token is not None:
            user, expires_at = await database_sync_to_async(user_for_access_token)(token)
            scope = {**scope, "user": user or AnonymousUser(), "auth_expires_at": expires_at}
        return await self.inner(scope, receive, send)


def WebsocketAuthMiddleware(inner):  # noqa: N802 - reads like the class-based stacks it wraps
    # The cookie stack runs first; a token, when given, decides the user.
    return AuthMiddlewareStack(_TokenAuthMiddleware(inner))
