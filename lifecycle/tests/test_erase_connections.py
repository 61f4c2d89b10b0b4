"""An erased user's connections are revoked at their authorization servers (RFC 7009), through the
connections app's own OAuth-protected test server."""

from __future__ import annotations

from connections.models import Connection
from connections.tests.conftest import auth_server, connect_oauth, oauth_integration, served  # noqa: F401 - fixtures
from lifecycle.erase import user_erase


def test_erasure_revokes_the_users_connections_at_their_servers(user, oauth_integration, auth_server, settings):  # noqa: F811
    settings.CLAIRE_API_KEY = ""
    connect_oauth(user, oauth_integration, login="alice")
    row = Connection.objects.get(user=user)
    user_erase(user=user)
    assert not Connection.objects.exists()
    assert row.refresh_token in auth_server.revoked
