from __future__ import annotations

import socket

import pytest
from rest_framework.test import APIClient

from orgproxy.tests.fake_claire import FakeClaire


@pytest.fixture
def claire(settings):
    """The fake Claire API, with this server pointed at it and configured with its key."""
    with FakeClaire() as fake:
        settings.CLAIRE_BASE_URL = fake.base_url
        settings.CLAIRE_API_KEY = fake.api_key
        settings.CLAIRE_CONNECT_TIMEOUT = 1.0
        settings.CLAIRE_READ_TIMEOUT = 1.0
        settings.CLAIRE_ENABLED_DEVICE_ACTION_IDS = ["open_url", "show_map"]
        yield fake


@pytest.fixture
def closed_port_url() -> str:
    """A URL on 127.0.0.1 where nothing listens: connections are refused."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}"


@pytest.fixture
def unresponsive_url():
    """A URL on 127.0.0.1 where connecting times out: a listener whose one-place backlog is full
    and which never accepts, so the kernel drops further connection attempts."""
    with socket.socket() as listener, socket.socket() as filler:
        listener.bind(("127.0.0.1", 0))
        listener.listen(0)
        filler.connect(listener.getsockname())
        yield f"http://127.0.0.1:{listener.getsockname()[1]}"


@pytest.fixture
def provider_client(oidc_provider):
    """provider_client(sub=...) -> an API client sending a provider access token for that subject."""

    def make(**claims) -> APIClient:
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {oidc_provider.mint(**claims)}")
        return client

    return make
