"""Websocket authentication: the Django session cookie (the chat page) or an access token (or a
personal API key, `cdk_…`) sent as the subprotocols `["jwt", "<token>"]` (browsers can't set
headers on a websocket).

Sets `scope["user"]` and, for tokens, `scope["auth_expires_at"]` (a UNIX time) so a consumer can
close the socket when the token it was opened with expires. A consumer that accepts a token
connection must answer with the subprotocol "jwt", or browsers fail the handshake. Sockets join the
groups of accounts.sockets, so ending a session closes them.
"""

from __future__ import annotations

from channels.auth import AuthMiddlewareStack
from django.contrib.auth.models import AnonymousUser

from accounts.authentication import api_key_for_socket, user_for_access_token
from accounts.services import API_KEY_PREFIX
from accounts.sockets import token_from_subprotocols
from config.threads import run_sync


class _TokenAuthMiddleware:
    def __init__(self, inner):
        self.inner = inner

    async def __call__(self, scope, receive, send):
        token = token_from_subprotocols(scope.get("subprotocols") or [])
        if token is not None and token.startswith(API_KEY_PREFIX):
            # A personal API key in the token's place (tools that hold a key, not a JWT).
            user, expires_at, api_key_id = await run_sync(api_key_for_socket, token)
            scope = {**scope, "user": user or AnonymousUser(), "auth_expires_at": expires_at, "api_key_id": api_key_id}
        elif token is not None:
            user, expires_at = await run_sync(user_for_access_token, token)
            scope = {**scope, "user": user or AnonymousUser(), "auth_expires_at": expires_at}
        return await self.inner(scope, receive, send)


def WebsocketAuthMiddleware(inner):  # noqa: N802 - reads like the class-based stacks it wraps
    # The cookie stack runs first; a token, when given, decides the user.
    return AuthMiddlewareStack(_TokenAuthMiddleware(inner))
