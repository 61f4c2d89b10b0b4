from __future__ import annotations

import pytest

from accounts.models import User
from orgproxy.selectors import bots_list, claire_user_id
from orgproxy.tests.fake_claire import BOT_A

pytestmark = pytest.mark.django_db


def test_a_local_user_is_known_upstream_as_conduit_and_their_pk(user):
    assert claire_user_id(user=user) == f"conduit|{user.pk}"


def test_a_provider_user_is_known_upstream_by_their_subject(make_user):
    provider_user = make_user(provider=User.Provider.OIDC, external_id="auth0|abc123")

    assert claire_user_id(user=provider_user) == "auth0|abc123"


def test_a_provider_user_without_a_subject_falls_back_to_the_local_id(make_user):
    provider_user = make_user(provider=User.Provider.OIDC)

    assert claire_user_id(user=provider_user) == f"conduit|{provider_user.pk}"


def test_a_provider_token_user_creates_sessions_under_their_subject(provider_client, claire):
    client = provider_client(sub="google-oauth2|1234")

    session_id = client.post(f"/session?bot_id={BOT_A}").json()["session"]["session_id"]
    client.get("/session")
    client.post(f"/session/{session_id}/renew")

    assert claire.calls("POST", "/m2m/client_sessions")[0].body["user"] == {"organization_user_id": "google-oauth2|1234"}
    assert ("external_user_id", "google-oauth2|1234") in claire.calls("GET", "/m2m/client_sessions/")[0].query
    assert claire.calls("POST", f"/m2m/client_sessions/{session_id}/renew")[0].body == {
        "external_user_id": "google-oauth2|1234"
    }


def test_provider_users_cannot_touch_each_others_sessions(provider_client, claire):
    session_id = provider_client(sub="auth0|one").post(f"/session?bot_id={BOT_A}").json()["session"]["session_id"]

    other = provider_client(sub="auth0|two")

    assert other.delete(f"/session/{session_id}").status_code == 404
    assert other.post(f"/session/{session_id}/renew").status_code == 404
    assert other.get("/session").json()["results"] == []
    assert claire.calls("DELETE") == []


def test_the_bots_list_is_cached_for_the_configured_time(auth_client, claire, settings):
    settings.CLAIRE_BOTS_CACHE_TTL = 60

    for _ in range(3):
        assert auth_client.get("/bots").status_code == 200
    auth_client.get("/session")
    auth_client.post(f"/session?bot_id={BOT_A}")

    assert len(claire.calls("GET", "/m2m/organizations/bots")) == 1


def test_the_bots_list_is_not_cached_when_the_ttl_is_zero(claire, settings):
    settings.CLAIRE_BOTS_CACHE_TTL = 0

    bots_list()
    bots_list()

    assert len(claire.calls("GET", "/m2m/organizations/bots")) == 2


def test_a_failed_bots_call_is_not_cached(auth_client, claire):
    claire.fail("GET", "/m2m/organizations/bots", status=500)
    assert auth_client.get("/bots").status_code == 502
    claire.scripts.clear()

    assert auth_client.get("/bots").status_code == 200


def test_bots_costs_one_query_the_provider_users_lookup(provider_client, claire, django_assert_num_queries):
    client = provider_client(sub="auth0|bench")
    client.get("/bots")  # creates the user, fills the caches

    with django_assert_num_queries(1):
        assert client.get("/bots").status_code == 200


def test_renew_costs_the_user_lookup_and_the_ownership_check(provider_client, claire, django_assert_num_queries):
    client = provider_client(sub="auth0|bench")
    session_id = client.post(f"/session?bot_id={BOT_A}").json()["session"]["session_id"]

    with django_assert_num_queries(2):
        assert client.post(f"/session/{session_id}/renew").status_code == 200


def test_the_bots_list_is_read_from_the_shared_cache_at_most_once_a_second(claire, settings, monkeypatch):
    from django.core.cache import cache

    from orgproxy import selectors

    reads = []
    real_get = cache.get
    monkeypatch.setattr(cache, "get", lambda key, *args: reads.append(key) or real_get(key, *args))

    first = [bots_list() for _ in range(5)]
    now = selectors.time.monotonic
    monkeypatch.setattr(selectors.time, "monotonic", lambda: now() + selectors.RECENT_SECONDS)
    later = bots_list()

    assert len(reads) == 2  # the first call, and the one a second later
    assert len(claire.calls("GET", "/m2m/organizations/bots")) == 1  # the second read came from the shared cache
    assert all(bots == later for bots in first)
    first[0].append({"bot_id": "bot-added-by-a-caller"})
    assert bots_list() == later  # each caller gets its own list


def test_forgetting_the_bots_list_forgets_it_in_this_process_too(claire, settings):
    from orgproxy.selectors import bots_forget

    bots_list()
    claire.bots.pop()
    bots_forget()

    assert [bot["bot_id"] for bot in bots_list()] == [bot["bot_id"] for bot in claire.bots]
    assert len(claire.calls("GET", "/m2m/organizations/bots")) == 2
