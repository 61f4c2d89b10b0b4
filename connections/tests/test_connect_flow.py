"""Connecting over the API: OAuth as the MCP authorization spec asks (discovery, dynamic registration,
PKCE, `resource`), the callback page, personal tokens, listing and disconnecting (revoked at the server)."""

from __future__ import annotations

from datetime import timedelta
from urllib.parse import parse_qs, urlsplit

from django.db import connection as db
from django.utils import timezone

from agents.models import Integration
from connections.models import Connection, OAuthClient, OAuthState
from connections.tests.conftest import api_for, authorize_in_browser, connect_oauth


def test_it_connects_through_oauth_and_stores_the_tokens_encrypted(user, oauth_integration, auth_server):
    answer = connect_oauth(user, oauth_integration, login="alice")

    assert answer.status_code == 200 and b"Connected" in answer.content
    row = Connection.objects.get(user=user, integration=oauth_integration)
    assert row.status == "connected" and row.access_token in auth_server.access
    assert auth_server.access[row.access_token]["login"] == "alice"
    assert row.refresh_token in auth_server.refresh and row.expires_at > timezone.now()
    with db.cursor() as cursor:
        cursor.execute("SELECT access_token, refresh_token FROM connections_connection WHERE id = %s", [row.pk])
        stored = cursor.fetchone()
    assert row.access_token not in stored[0] and row.refresh_token not in stored[1]
    exchange = auth_server.token_requests[-1]
    assert exchange["grant_type"] == "authorization_code" and exchange["resource"] == f"{auth_server.base}/mcp"
    assert not OAuthState.objects.exists()  # used once, gone


def test_the_authorize_url_carries_pkce_s256_resource_and_a_registered_client(user, oauth_integration, auth_server):
    answer = api_for(user).post(f"/api/v1/integrations/{oauth_integration.pk}/connect", {}, format="json")

    query = parse_qs(urlsplit(answer.json()["authorize_url"]).query)
    assert query["code_challenge_method"] == ["S256"] and len(query["code_challenge"][0]) == 43
    assert query["resource"] == [f"{auth_server.base}/mcp"]
    assert query["redirect_uri"] == ["http://testserver/connections/oauth/callback"]
    assert query["client_id"][0] in auth_server.clients  # registered dynamically (RFC 7591)
    assert OAuthClient.objects.get(integration=oauth_integration).registered


def test_the_client_is_registered_once_per_integration(user, other_user, oauth_integration, auth_server):
    before = len(auth_server.clients)
    connect_oauth(user, oauth_integration, login="alice")
    connect_oauth(other_user, oauth_integration, login="bob")

    assert len(auth_server.clients) == before + 1


def test_staff_entered_client_is_used_without_registering(user, oauth_integration, auth_server):
    auth_server.clients["staff-client"] = {"redirect_uris": ["http://testserver/connections/oauth/callback"]}
    Integration.objects.filter(pk=oauth_integration.pk).update(oauth_client_id="staff-client")
    before = len(auth_server.clients)

    answer = connect_oauth(user, oauth_integration, login="alice")

    assert answer.status_code == 200 and len(auth_server.clients) == before
    assert auth_server.token_requests[-1]["client_id"] == "staff-client"


def test_a_replayed_callback_is_refused(user, oauth_integration, auth_server):
    client = api_for(user)
    url = client.post(f"/api/v1/integrations/{oauth_integration.pk}/connect", {}, format="json").json()["authorize_url"]
    callback = authorize_in_browser(url, login="alice")
    assert client.get(callback).status_code == 200

    again = client.get(callback)

    assert again.status_code == 400 and b"already used" in again.content


def test_a_forged_state_is_refused_and_connects_nobody(user, oauth_integration, auth_server):
    answer = api_for(user).get("/connections/oauth/callback?code=stolen&state=made-up")

    assert answer.status_code == 400 and not Connection.objects.exists()


def test_an_authorization_that_took_too_long_is_refused(user, oauth_integration, auth_server, settings):
    client = api_for(user)
    url = client.post(f"/api/v1/integrations/{oauth_integration.pk}/connect", {}, format="json").json()["authorize_url"]
    OAuthState.objects.update(created_at=timezone.now() - timedelta(seconds=settings.CONNECTIONS_STATE_TTL + 1))

    answer = client.get(authorize_in_browser(url, login="alice"))

    assert answer.status_code == 400 and b"too long" in answer.content and not Connection.objects.exists()


def test_a_denied_authorization_shows_why(user, oauth_integration, auth_server):
    client = api_for(user)
    url = client.post(f"/api/v1/integrations/{oauth_integration.pk}/connect", {}, format="json").json()["authorize_url"]
    state = parse_qs(urlsplit(url).query)["state"][0]

    answer = client.get(f"/connections/oauth/callback?error=access_denied&state={state}")

    assert answer.status_code == 400 and b"access_denied" in answer.content


def test_the_list_shows_status_and_scopes_never_a_token(user, oauth_integration, auth_server):
    connect_oauth(user, oauth_integration, login="alice")
    row = Connection.objects.get(user=user)

    answer = api_for(user).get("/api/v1/connections")

    assert answer.status_code == 200
    [item] = answer.json()
    assert item["integration"] == {"id": oauth_integration.pk, "name": "notes"}
    assert item["status"] == "connected" and item["scopes"] == ["notes.read"] and item["expires_at"]
    assert row.access_token not in answer.content.decode() and row.refresh_token not in answer.content.decode()


def test_disconnecting_revokes_the_tokens_at_the_server(user, oauth_integration, auth_server):
    connect_oauth(user, oauth_integration, login="alice")
    row = Connection.objects.get(user=user)

    answer = api_for(user).delete(f"/api/v1/connections/{row.pk}")

    assert answer.status_code == 204 and not Connection.objects.exists()
    assert {row.access_token, row.refresh_token} <= set(auth_server.revoked)
    assert row.access_token not in auth_server.access


def test_one_cannot_disconnect_someone_elses_connection(user, other_user, oauth_integration, auth_server):
    connect_oauth(user, oauth_integration, login="alice")
    row = Connection.objects.get(user=user)

    answer = api_for(other_user).delete(f"/api/v1/connections/{row.pk}")

    assert answer.status_code == 404 and Connection.objects.filter(pk=row.pk).exists()


def test_a_personal_token_is_stored_for_the_user(user, auth_server):
    integration = Integration.objects.create(name="tracker", provider="linear", auth="per_user_token",
                                             mcp_server={"type": "http", "url": f"{auth_server.base}/mcp"})  # fmt: skip

    answer = api_for(user).post(f"/api/v1/integrations/{integration.pk}/connect", {"token": "my-own-token"},
                                format="json")  # fmt: skip

    assert answer.status_code == 201 and answer.json()["status"] == "connected" and "token" not in answer.json()
    assert Connection.objects.get(user=user, integration=integration).access_token == "my-own-token"


def test_bad_connect_input_gets_field_messages(user, oauth_integration, auth_server):
    token_integration = Integration.objects.create(name="tracker", provider="linear", auth="per_user_token",
                                                   mcp_server={"type": "http", "url": f"{auth_server.base}/mcp"})  # fmt: skip
    shared = Integration.objects.create(name="shared", provider="slack", credentials="staff-token",
                                        mcp_server={"type": "http", "url": f"{auth_server.base}/mcp"})  # fmt: skip
    client = api_for(user)

    missing = client.post(f"/api/v1/integrations/{token_integration.pk}/connect", {}, format="json")
    control = client.post(f"/api/v1/integrations/{token_integration.pk}/connect", {"token": "a\x07b"}, format="json")
    nothing = client.post(f"/api/v1/integrations/{shared.pk}/connect", {}, format="json")
    unknown = client.post("/api/v1/integrations/99999999999999999999/connect", {}, format="json")

    assert missing.status_code == 400 and "token" in missing.json()["detail"]["fields"]
    assert control.status_code == 400 and "token" in control.json()["detail"]["fields"]
    assert nothing.status_code == 400 and "shared credentials" in str(nothing.json()["detail"]["fields"])
    assert unknown.status_code == 404


def test_another_users_integration_cannot_be_connected(user, other_user, auth_server, settings):
    settings.OUTBOUND_ALLOWED_HOSTS = [urlsplit(auth_server.base).netloc]
    theirs = Integration.objects.create(name="mine", provider="custom", auth="oauth", owner=other_user,
                                        mcp_server={"type": "http", "url": f"{auth_server.base}/mcp"})  # fmt: skip

    answer = api_for(user).post(f"/api/v1/integrations/{theirs.pk}/connect", {}, format="json")

    assert answer.status_code == 404


def test_a_per_user_integration_needs_a_remote_server(user):
    client = api_for(user)

    stdio = client.post("/api/v1/integrations", {"provider": "custom", "auth": "oauth",
                                                 "mcp_server": {"command": "sh"}}, format="json")  # fmt: skip
    none = client.post("/api/v1/integrations", {"provider": "github", "auth": "per_user_token"}, format="json")
    unknown = client.post("/api/v1/integrations", {"provider": "gitlab", "auth": "everyone"}, format="json")

    assert stdio.status_code == 400 and none.status_code == 400 and "auth" in none.json()["detail"]["fields"]
    assert unknown.status_code == 400 and "auth" in unknown.json()["detail"]["fields"]


def test_the_oauth_client_secret_is_write_only(user, auth_server, settings):
    settings.OUTBOUND_ALLOWED_HOSTS = [urlsplit(auth_server.base).netloc]
    client = api_for(user)

    made = client.post("/api/v1/integrations", {"provider": "custom", "auth": "oauth", "oauth_client_id": "mine",
                                                "oauth_client_secret": "very-secret-value",
                                                "mcp_server": {"type": "http", "url": f"{auth_server.base}/mcp"}},
                       format="json")  # fmt: skip

    assert made.status_code == 201, made.json()
    assert made.json()["auth"] == "oauth" and "oauth_client_secret" not in made.json()
    assert Integration.objects.get(pk=made.json()["id"]).oauth_client_secret == "very-secret-value"


def test_deleting_a_user_revokes_their_grants_at_the_server(
    user, oauth_integration, auth_server, django_capture_on_commit_callbacks
):
    connect_oauth(user, oauth_integration, login="alice")
    row = Connection.objects.get(user=user)

    with django_capture_on_commit_callbacks(execute=True):
        user.delete()

    assert not Connection.objects.exists() and row.refresh_token in auth_server.revoked
