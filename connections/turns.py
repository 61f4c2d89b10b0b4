"""What a turn needs of connections: the user's token in the servers' headers of the integrations
that need one, or a refusal naming the integration to connect.

The catalog (assistant/runs/catalog.py) is shared by every user, so it holds only which servers need a
user's connection (`personal_servers`); the tokens are read per turn (`specs_for_user`, one query).
A token goes only into the `Authorization` header of its own integration's server spec; the pool of warm
MCP connections keys connections by their headers (assistant/tools/mcp_pool.py), so one user's
connection never serves another's turn.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Iterable

from django.utils import timezone

from connections.models import Connection
from connections.oauth import same_resource
from connections.services import connect_url, needs_refresh


@dataclass(frozen=True)
class PersonalServer:
    server_name: str  # the MCP server's name in the turn (the integration's server_name)
    integration_id: int
    integration_name: str
    auth: str  # per_user_token | oauth: how the user connects


class ConnectionRequired(Exception):
    """The user has no usable connection to an integration the agent needs."""

    def __init__(self, server: PersonalServer, reason: str):
        self.integration_id = server.integration_id
        self.integration_name = server.integration_name
        self.auth = server.auth
        self.connect_url = connect_url(server.integration_id)
        self.message = (f"This agent uses the integration “{server.integration_name}”, {reason}. Connect it "
                        f"(POST {self.connect_url}), then try again.")  # fmt: skip
        super().__init__(self.message)

    def details(self) -> dict:
        return {"integration": {"id": self.integration_id, "name": self.integration_name, "auth": self.auth},
                "connect_url": self.connect_url}  # fmt: skip


class RefreshNeeded(Exception):
    """Tokens to refresh before the turn (outside its transaction: services.connection_refresh)."""

    def __init__(self, connection_ids: list[int]):
        super().__init__(f"{len(connection_ids)} connection(s) to refresh")
        self.connection_ids = connection_ids


def personal_servers(integrations: Iterable) -> tuple[PersonalServer, ...]:
    """The agent's active integrations whose servers need each user's own connection."""
    return tuple(
        PersonalServer(i.server_name, i.pk, i.name or i.get_provider_display(), i.auth)
        for i in integrations
        if i.is_active and i.mcp_server and i.per_user
    )


def specs_for_user(*, user_id: int, specs: tuple, personal: tuple[PersonalServer, ...], refresh: bool = True) -> tuple:
    """`specs` with the user's token in the personal servers' headers. ConnectionRequired; RefreshNeeded
    (when `refresh`) for tokens about to expire — without `refresh`, a token not yet expired is used
    and an expired one is refused."""
    if not personal:
        return specs
    rows = {row.integration_id: row for row in Connection.objects.filter(
        user_id=user_id, integration_id__in=[p.integration_id for p in personal])}  # fmt: skip
    tokens: dict[str, str] = {}
    stale: list[int] = []
    urls = {spec.name: spec.url for spec in specs}
    for server in personal:
        row = rows.get(server.integration_id)
        if row is None:
            raise ConnectionRequired(server, "which you have not connected")
        if row.status != Connection.Status.CONNECTED:
            raise ConnectionRequired(server, "whose connection needs reconnecting")
        if not same_resource(row.resource, urls.get(server.server_name, "")):
            # A token goes only to the server it was given or issued for (staff moved the integration).
            raise ConnectionRequired(server, "whose server changed since you connected it")
        if needs_refresh(row) and refresh:
            stale.append(row.pk)
            continue
        if row.expires_at is not None and row.expires_at <= timezone.now():
            reason = "and could not be refreshed" if row.refresh_token else "(no refresh token was issued)"
            raise ConnectionRequired(server, f"whose token expired {reason}")
        tokens[server.server_name] = row.access_token
    if stale:
        raise RefreshNeeded(stale)
    return tuple(_with_token(spec, tokens[spec.name]) if spec.name in tokens else spec for spec in specs)


def _with_token(spec, token: str):
    headers = {name: value for name, value in spec.headers.items() if name.lower() != "authorization"}
    headers["Authorization"] = f"Bearer {token}"
    return replace(spec, headers=headers)


def specs_for_user_now(*, user_id: int, specs: tuple, personal: tuple[PersonalServer, ...]) -> tuple:
    """`specs_for_user`, refreshing what needs it first (outside any transaction of the caller's: the
    CLI's runs). ConnectionRequired."""
    from connections.services import connection_refresh

    try:
        return specs_for_user(user_id=user_id, specs=specs, personal=personal)
    except RefreshNeeded as needed:
        for connection_id in needed.connection_ids:
            connection_refresh(connection_id=connection_id)
        return specs_for_user(user_id=user_id, specs=specs, personal=personal, refresh=False)
