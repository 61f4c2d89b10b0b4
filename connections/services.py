"""The rules of connections: making one (a token, or OAuth's authorize → callback), refreshing its
tokens once across processes, ending one (revoked at the server when it offers revocation).

An ordinary user's integration (owner set) reaches its servers only through the egress policy.
Tokens are decrypted only here and in turns.py; never logged.
"""

from __future__ import annotations

import hashlib
import logging
import secrets
from dataclasses import dataclass
from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from agents.models import Integration
from connections import oauth
from connections.models import Connection, OAuthClient, OAuthState

logger = logging.getLogger(__name__)

CALLBACK_PATH = "/connections/oauth/callback"
MAX_TOKEN_CHARS = 8000


class ConnectError(Exception):
    """A connection can't be made; `field` is the input at fault when one is."""

    def __init__(self, message: str, *, field: str | None = None):
        super().__init__(message)
        self.message, self.field = message, field


def _guarded(integration: Integration) -> bool:
    return integration.owner_id is not None


def _state_hash(state: str) -> str:
    return hashlib.sha256(state.encode()).hexdigest()


def connect_url(integration_id: int) -> str:
    return f"/api/v1/integrations/{integration_id}/connect"


def _usable(integration: Integration) -> None:
    if not integration.is_active:
        raise ConnectError("This integration is not active.")
    if not integration.per_user:
        raise ConnectError("This integration uses shared credentials: there is nothing to connect.")


def _client(value: OAuthClient) -> oauth.Client:
    return oauth.Client(value.client_id, value.client_secret, value.token_endpoint_auth_method)


# --- personal tokens --------------------------------------------------------------------------------


def token_connect(*, user, integration: Integration, token: str) -> Connection:
    """A user's own token for a `per_user_token` integration (replacing theirs, if any)."""
    _usable(integration)
    if integration.auth != "per_user_token":
        raise ConnectError("This integration connects through OAuth: ask for an authorize URL instead.", field="token")
    token = (token or "").strip()
    if not token or len(token) > MAX_TOKEN_CHARS or any(ord(c) < 32 or ord(c) == 127 for c in token):
        raise ConnectError(f"Give the token: 1 to {MAX_TOKEN_CHARS} printable characters.", field="token")
    connection, _ = Connection.objects.update_or_create(
        user=user, integration=integration,
        defaults={"access_token": token, "refresh_token": "", "status": Connection.Status.CONNECTED, "scopes": "",
                  "expires_at": None, "client": None, "resource": (integration.mcp_server or {}).get("url", ""),
                  "connected_at": timezone.now()},
    )  # fmt: skip
    return connection


# --- OAuth ------------------------------------------------------------------------------------------


def redirect_uri_for(base_url: str) -> str:
    return base_url.rstrip("/") + CALLBACK_PATH


@transaction.atomic
def _oauth_client(integration: Integration, server: oauth.ServerAuth, redirect_uri: str) -> OAuthClient:
    """This site's client at `server` for the integration: staff's, the one registered before, or one
    registered now — under the integration's row lock, so users connecting at once register one."""
    # NO KEY UPDATE: rows referencing the integration (authorizations being stored) aren't held up by it.
    Integration.objects.select_for_update(no_key=True).filter(pk=integration.pk).first()
    endpoints = {"authorization_endpoint": server.authorization_endpoint, "token_endpoint": server.token_endpoint,
                 "revocation_endpoint": server.revocation_endpoint}  # fmt: skip
    existing = OAuthClient.objects.filter(integration=integration, issuer=server.issuer, redirect_uri=redirect_uri).first()
    if integration.oauth_client_id:  # staff's client, whatever was registered before
        method = "client_secret_basic" if integration.oauth_client_secret else "none"
        values = {"client_id": integration.oauth_client_id, "client_secret": integration.oauth_client_secret,
                  "token_endpoint_auth_method": method, "registered": False, **endpoints}  # fmt: skip
    elif existing is not None and existing.registered:
        values = endpoints
    else:
        client = oauth.register(server, redirect_uri=redirect_uri, client_name=f"{settings.APP_NAME}",
                                guarded=_guarded(integration))  # fmt: skip
        values = {"client_id": client.client_id, "client_secret": client.client_secret,
                  "token_endpoint_auth_method": client.auth_method, "registered": True, **endpoints}  # fmt: skip
    row, _ = OAuthClient.objects.update_or_create(
        integration=integration, issuer=server.issuer, redirect_uri=redirect_uri, defaults=values
    )
    return row


def oauth_start(*, user, integration: Integration, base_url: str) -> str:
    """Discovery, the client (registered if needed), a pending authorization stored with its PKCE
    verifier; the URL to send the user's browser to. ConnectError."""
    _usable(integration)
    if integration.auth != "oauth":
        raise ConnectError("This integration takes a personal token: send it as `token`.", field="token")
    server_url = (integration.mcp_server or {}).get("url", "")
    try:
        server = oauth.discover(server_url, guarded=_guarded(integration))
        client = _oauth_client(integration, server, redirect_uri_for(base_url))
    except oauth.OAuthError as exc:
        raise ConnectError(str(exc)) from None
    verifier, challenge = oauth.pkce_pair()
    state = secrets.token_urlsafe(32)
    scope = integration.oauth_scopes.strip() or " ".join(server.scopes_supported)
    now = timezone.now()
    OAuthState.objects.filter(created_at__lt=now - timedelta(seconds=settings.CONNECTIONS_STATE_TTL)).delete()
    OAuthState.objects.create(state_hash=_state_hash(state), user=user, integration=integration, client=client,
                              code_verifier=verifier, resource=server.resource, scopes=scope, created_at=now)  # fmt: skip
    return oauth.authorize_url(endpoint=client.authorization_endpoint, client_id=client.client_id,
                               redirect_uri=client.redirect_uri, state=state, challenge=challenge,
                               resource=server.resource, scope=scope)  # fmt: skip


def _pending_take(state: str) -> OAuthState:
    """The authorization `state` names, taken once (deleted in the same transaction)."""
    with transaction.atomic():
        pending = (OAuthState.objects.select_for_update(of=("self",)).select_related("client", "integration", "user")
                   .filter(state_hash=_state_hash(state or "")).first())  # fmt: skip
        if pending is None:
            raise ConnectError("This authorization is unknown or was already used; start connecting again.")
        pending.delete()
    if pending.created_at < timezone.now() - timedelta(seconds=settings.CONNECTIONS_STATE_TTL):
        raise ConnectError("This authorization took too long; start connecting again.")
    return pending


def oauth_finish(*, state: str, code: str = "", error: str = "") -> Connection:
    """The callback: the authorization's code exchanged (with the PKCE verifier and `resource`) for
    the user's tokens. ConnectError."""
    pending = _pending_take(state)
    if not pending.integration.is_active or pending.integration.auth != "oauth":
        raise ConnectError("This integration changed while you were authorizing; start connecting again.")
    if error or not code:
        raise ConnectError(f"The authorization server did not authorize the connection ({(error or 'no code')[:80]}).")
    client = pending.client
    try:
        tokens = oauth.exchange_code(
            endpoint=client.token_endpoint, client=_client(client), code=code, verifier=pending.code_verifier,
            redirect_uri=client.redirect_uri, resource=pending.resource, guarded=_guarded(pending.integration),
        )  # fmt: skip
    except oauth.OAuthError as exc:
        raise ConnectError(str(exc)) from None
    now = timezone.now()
    connection, _ = Connection.objects.update_or_create(
        user=pending.user, integration=pending.integration,
        defaults={"access_token": tokens.access_token, "refresh_token": tokens.refresh_token,
                  "status": Connection.Status.CONNECTED, "scopes": tokens.scope or pending.scopes,
                  "expires_at": _expiry(now, tokens), "client": client, "resource": pending.resource,
                  "connected_at": now},
    )  # fmt: skip
    logger.info("User %s connected integration %s", pending.user_id, pending.integration_id)
    return connection


def _expiry(now, tokens: oauth.Tokens):
    return now + timedelta(seconds=tokens.expires_in) if tokens.expires_in else None


# --- refresh ----------------------------------------------------------------------------------------


def needs_refresh(connection: Connection) -> bool:
    if connection.expires_at is None or not connection.refresh_token or connection.client_id is None:
        return False
    margin = timedelta(seconds=settings.CONNECTIONS_REFRESH_MARGIN)
    return connection.expires_at <= timezone.now() + margin


@dataclass(frozen=True)
class RefreshOutcome:
    refreshed: bool  # this call redeemed the refresh token
    status: str


def connection_refresh(*, connection_id: int) -> RefreshOutcome:
    """Refresh the connection's tokens if they still need it, once across processes: the row is locked
    (PostgreSQL: SELECT … FOR UPDATE; SQLite: the transaction's write lock) and read again after the
    lock is taken, so a second caller finds them fresh. A refused refresh → needs_reconnect; a network
    failure changes nothing (the next turn tries again)."""
    with transaction.atomic():
        row = Connection.objects.select_for_update(of=("self",)).filter(pk=connection_id).select_related(
            "client", "integration").first()  # fmt: skip
        if row is None or row.status != Connection.Status.CONNECTED or not needs_refresh(row):
            return RefreshOutcome(False, row.status if row is not None else "gone")
        try:
            tokens = oauth.refresh(endpoint=row.client.token_endpoint, client=_client(row.client),
                                   refresh_token=row.refresh_token, resource=row.resource,
                                   guarded=_guarded(row.integration))  # fmt: skip
        except oauth.OAuthError as exc:
            if not exc.refused:
                logger.warning("Connection %s: refresh failed: %s", row.pk, exc)
                return RefreshOutcome(False, row.status)
            logger.info("Connection %s: refresh refused; it needs reconnecting", row.pk)
            row.status = Connection.Status.NEEDS_RECONNECT
            row.save(update_fields=["status", "updated_at"])
            return RefreshOutcome(False, row.status)
        row.access_token = tokens.access_token
        row.refresh_token = tokens.refresh_token or row.refresh_token  # a server that doesn't rotate keeps it
        row.expires_at = _expiry(timezone.now(), tokens)
        if tokens.scope:
            row.scopes = tokens.scope
        row.save(update_fields=["access_token", "refresh_token", "expires_at", "scopes", "updated_at"])
        return RefreshOutcome(True, row.status)


# --- ending -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Revocation:
    """What revoking a connection's grant needs, read before its rows go (a cascade may take its client)."""

    connection_id: int
    endpoint: str
    client: oauth.Client
    tokens: tuple[tuple[str, str], ...]  # (token, hint)
    guarded: bool

    def run(self) -> bool:
        """RFC 7009 for each token; whether the server accepted one. Failures are logged, not raised."""
        revoked = False
        try:
            for token, hint in self.tokens:
                revoked = oauth.revoke(endpoint=self.endpoint, client=self.client, token=token, hint=hint,
                                       guarded=self.guarded) or revoked  # fmt: skip
        except oauth.OAuthError as exc:
            logger.warning("Connection %s: revocation failed: %s", self.connection_id, exc)
        return revoked


def revocation_for(connection: Connection) -> Revocation | None:
    client = connection.client
    if client is None or not client.revocation_endpoint:
        return None
    tokens = tuple((t, hint) for t, hint in ((connection.refresh_token, "refresh_token"),
                                              (connection.access_token, "access_token")) if t)  # fmt: skip
    return Revocation(connection.pk, client.revocation_endpoint, _client(client), tokens,
                      _guarded(connection.integration))  # fmt: skip


def connection_delete(*, connection: Connection) -> bool:
    """Revoke the connection's tokens at the server when it offers revocation (RFC 7009), then delete
    them whatever it answered. Whether the server accepted the revocation."""
    revocation = revocation_for(connection)
    revoked = revocation.run() if revocation is not None else False
    connection.revoked_here = True  # connections.signals: nothing left to revoke
    connection.delete()
    return revoked
