"""Fixtures of the connections tests: the OAuth-protected MCP server (one per module), integrations
that need each user's connection, and the browser's part of the OAuth dance."""

from __future__ import annotations

from urllib.parse import urlsplit

import pytest
import requests
from rest_framework.test import APIClient

from accounts.services import token_pair_issue
from agents.models import Integration
from connections.tests.oauth_server import oauth_mcp_server


@pytest.fixture(scope="module")
def served():
    with oauth_mcp_server() as state:
        yield state


@pytest.fixture
def auth_server(served):
    """The module's server, its switches back to normal for each test."""
    served.refuse_refresh, served.refresh_delay, served.access_lifetime = False, 0.0, 3600
    return served


def api_for(user) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {token_pair_issue(user=user)['access_token']}")
    return client


@pytest.fixture
def oauth_integration(db, auth_server) -> Integration:
    return Integration.objects.create(name="notes", provider="custom", auth="oauth",
                                      mcp_server={"type": "http", "url": f"{auth_server.base}/mcp"})  # fmt: skip


def authorize_in_browser(authorize_url: str, *, login: str) -> str:
    """The user's browser at the authorization server: logs in as `login`, approves, and is sent back;
    the callback's path and query (on this site)."""
    answer = requests.get(f"{authorize_url}&login={login}", allow_redirects=False, timeout=10)
    assert answer.status_code == 302, answer.text
    back = urlsplit(answer.headers["Location"])
    assert back.path == "/connections/oauth/callback"
    return f"{back.path}?{back.query}"


def connect_oauth(user, integration: Integration, *, login: str):
    """The whole connect: the API's authorize URL, the browser, the callback page. The callback answer."""
    client = api_for(user)
    answer = client.post(f"/api/v1/integrations/{integration.pk}/connect", {}, format="json")
    assert answer.status_code == 200, answer.json()
    return client.get(authorize_in_browser(answer.json()["authorize_url"], login=login))
