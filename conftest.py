"""Fixtures shared by every app's tests."""

from __future__ import annotations

import asyncio
import inspect
import logging
import shutil
import tempfile
from pathlib import Path

import pytest
from django.core.cache import cache
from rest_framework.test import APIClient

from accounts.models import User

TEST_PASSWORD = "a-long-test-passphrase-42"
TASKS_LEFT_GRACE = 10  # seconds a task left running by an async test has to end once cancelled

logger = logging.getLogger("conduit.tests")


def pytest_collection_modifyitems(items):
    for item in items:
        if inspect.iscoroutinefunction(getattr(item, "function", None)):
            item.fixturenames.append("_tasks_left_behind")


@pytest.fixture
async def _tasks_left_behind():
    """Tasks an async test leaves running are cancelled before its event loop closes, and given
    TASKS_LEFT_GRACE seconds. asyncio's own close waits for them without a limit: one that never ends
    (seen rarely on PostgreSQL + Redis under load, at a channel layer's receive being torn down) hung
    the whole suite. One that outlives the grace is reported with its stack and let go."""
    yield
    current = asyncio.current_task()
    left = [task for task in asyncio.all_tasks() if task is not current and not task.done()]
    for task in left:
        task.cancel()
    if not left:
        return
    _, pending = await asyncio.wait(left, timeout=TASKS_LEFT_GRACE)
    for task in pending:
        stack = "".join(f"\n  {f.f_code.co_filename}:{f.f_lineno} {f.f_code.co_name}" for f in task.get_stack())
        logger.error("A task did not end %s s after it was cancelled; let go: %r%s", TASKS_LEFT_GRACE, task, stack)
        asyncio.tasks._unregister_task(task)  # else the loop's close waits for it forever


@pytest.fixture(autouse=True)
def _fast_password_hashing(settings):
    # Argon2 costs ~0.2 s a hash here; tests that check the production hasher set it back.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture(autouse=True)
def _workspaces_dir(settings):
    # Sessions' workspaces live in a directory of the test's own; never the checkout's data/. Its
    # parents must be traversable by the sandbox's user (pytest makes its temporary dirs 0700).
    root = Path(tempfile.mkdtemp(prefix="conduit-workspaces-"))
    root.chmod(0o711)
    settings.WORKSPACES_DIR = root
    yield root
    shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(autouse=True)
def _clear_cache():
    # Throttle counters and cached upstream answers must not leak from one test into the next
    # (the bots list is also kept in the process for a second: orgproxy.selectors; the agents turns
    # read, per catalog version: assistant.runs.catalog).
    from assistant.runs.catalog import turn_catalog
    from orgproxy.selectors import bots_forget

    cache.clear()
    bots_forget()
    turn_catalog.clear()
    yield
    cache.clear()
    bots_forget()
    turn_catalog.clear()


@pytest.fixture(autouse=True)
async def _mcp_pool_closed():
    # Warm MCP connections are kept per event loop (assistant/tools/mcp_pool.py), and each test's loop
    # ends with the test: they are closed while it still runs, so no connection task outlives it.
    yield
    from assistant.tools.mcp_pool import mcp_pool_close

    await mcp_pool_close()


@pytest.fixture(autouse=True)
def _fresh_channel_layer():
    # The channel layer is cached per process, and channels-redis binds its connections to the
    # event loop that opened them; each async test runs in a loop of its own.
    from channels.layers import channel_layers

    channel_layers.backends.clear()
    yield
    channel_layers.backends.clear()


@pytest.fixture(scope="session", autouse=True)
def _close_connections_of_the_sync_thread(django_db_setup):
    # database_sync_to_async runs ORM calls in one shared thread whose persistent connection
    # would keep PostgreSQL from dropping the test database at the end.
    yield
    import asyncio

    from asgiref.sync import sync_to_async
    from django.db import connections

    asyncio.run(sync_to_async(connections.close_all)())
    from config.threads import close_connections_on_lanes

    close_connections_on_lanes()


@pytest.fixture
def api_client() -> APIClient:
    return APIClient()


@pytest.fixture
def make_user(db):
    counter = iter(range(1, 10_000))

    def make(**fields) -> User:
        n = next(counter)
        fields.setdefault("email", f"user{n}@example.com")
        fields.setdefault("name", f"User {n}")
        password = fields.pop("password", TEST_PASSWORD)
        return User.objects.create_user(password=password, **fields)

    return make


@pytest.fixture
def user(make_user) -> User:
    return make_user(email="alice@example.com", name="Alice")


@pytest.fixture
def other_user(make_user) -> User:
    return make_user(email="bob@example.com", name="Bob")


@pytest.fixture
def auth_client(user) -> APIClient:
    """An API client that sends a real access token for `user`."""
    from accounts.services import token_pair_issue

    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {token_pair_issue(user=user)['access_token']}")
    return client


@pytest.fixture
def client_for():
    """client_for(user) -> an API client authenticated with a real access token for that user."""
    from accounts.services import token_pair_issue

    def make(some_user: User) -> APIClient:
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {token_pair_issue(user=some_user)['access_token']}")
        return client

    return make


@pytest.fixture
def oidc_provider(settings):
    """A fake OpenID provider (real server, real RSA keys) that this server trusts for the test:
    provider.mint(sub=...) makes access tokens the API accepts. See config/testing/fake_oidc.py."""
    from accounts.authentication import reset_provider_keys
    from config.testing.fake_oidc import FakeOIDCProvider

    with FakeOIDCProvider() as provider:
        settings.AUTH0_DOMAIN = provider.base_url.removeprefix("http://")
        settings.AUTH0_AUDIENCE = provider.audience
        settings.AUTH0_ISSUER = provider.issuer
        settings.AUTH0_JWKS_URL = provider.jwks_url
        settings.AUTH0_JWKS_REFRESH_COOLDOWN = 0
        reset_provider_keys()
        yield provider
        reset_provider_keys()
