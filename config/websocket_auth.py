"""Websocket authentication: the Django session cookie (the chat page) or an access token sent
as the subprotocols `["jwt", "<token>"]` (browsers can't set headers on a websocket).

Sets `scope["user"]` and, for tokens, `scope["auth_expires_at"]` (a UNIX time) so a consumer can
close the socket when the token it was opened with expires. A consumer that accepts a token
connection must answer with the subprotocol "jwt", or browsers fail the handshake.
"""

from __future__ import annotations

from channels.auth import AuthMiddlewareStack
from channels.db import database_sync_to_async
from django.contrib.auth.models import AnonymousUser

from accounts.authentication import user_for_access_token

JWT_SUBPROTOCOL = "jwt"


def token_from_subprotocols(subprotocols: list[str]) -> str | None:
    if len(subprotocols) >= 2 and subprotocols[0] == JWT_SUBPROTOCOL:
        return subprotocols[1]
    return None


class _TokenAuthMiddleware:
    def __init__(self, inner):
        self.inner = inner

    async def __call__(self, scope, receive, send):
        token = token_from_subprotocols(scope.get("subprotocols") or [])
        if token is not None:
            user, expires_at = await database_sync_to_async(user_for_access_token)(token)
            scope = {**scope, "user": user or AnonymousUser(), "auth_expires_at": expires_at}
        return await self.inner(scope, receive, send)


def WebsocketAuthMiddleware(inner):  # noqa: N802 - reads like the class-based stacks it wraps
    # The cookie stack runs first; a token, when given, decides the user.
    return AuthMiddlewareStack(_TokenAuthMiddleware(inner))
