"""config.cache.RedisCache: Django's Redis cache with one redis-py client per pool, shared by threads."""

from __future__ import annotations

import threading
import uuid

import pytest
import redis

from config.cache import RedisCache
from config.testing.processes import (
    REDIS_TEST_URL,
    database_url_for_children,
    http_json,
    redis_is_reachable,
    require,
    running_server,
    signed_up,
)
from orgproxy.tests.fake_claire import FakeClaire


def make_cache() -> RedisCache:
    require(redis_is_reachable(), "Redis")
    return RedisCache(REDIS_TEST_URL, {"KEY_PREFIX": f"test-cache-{uuid.uuid4().hex[:8]}"})


def test_cache_calls_share_one_client_on_the_pool():
    cache = make_cache()
    cache.set("bots", [{"bot_id": "bot-1"}], 30)

    first, second = cache._cache.get_client(), cache._cache.get_client(write=True)

    assert first is second  # one server: reads and writes go to the same pool, through one client
    assert cache.get("bots") == [{"bot_id": "bot-1"}]
    cache.delete("bots")  # not clear(): that empties the whole Redis database


def test_threads_share_the_client_and_each_sees_its_own_values():
    cache = make_cache()
    clients, errors = set(), []

    def work(n: int) -> None:
        try:
            for i in range(50):
                cache.set(f"k{n}", i, 30)
                assert cache.get(f"k{n}") == i
                cache.add(f"counter{n}", 0, 30)
                cache.incr(f"counter{n}")
            clients.add(id(cache._cache.get_client()))
        except Exception as exc:  # noqa: BLE001 - reported below with the thread's number
            errors.append((n, exc))

    threads = [threading.Thread(target=work, args=(n,)) for n in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)

    assert errors == []
    assert len(clients) == 1
    assert [cache.get(f"counter{n}") for n in range(16)] == [50] * 16
    cache.delete_many([f"{name}{n}" for name in ("k", "counter") for n in range(16)])


@pytest.mark.django_db(transaction=True)
def test_a_served_process_keeps_its_redis_connections_across_requests(tmp_path):
    """Each request through the WSGI bridge runs in a fresh context, where Django makes a new cache
    object: the connections must still be the process's (they were one new connection per request)."""
    require(redis_is_reachable(), "Redis")
    redis_server = redis.Redis.from_url(REDIS_TEST_URL)
    with FakeClaire() as claire:
        env = {"DATABASE_URL": database_url_for_children(tmp_path), "REDIS_URL": REDIS_TEST_URL,
               "CLAIRE__BASE_URL": claire.base_url, "CLAIRE__API_KEY": claire.api_key, "WSGI_THREADS": "4"}  # fmt: skip
        with running_server(env) as base:
            _, token = signed_up(base)
            assert http_json("GET", f"{base}/bots", token=token)[0] == 200  # warm: the pool's first connections
            before = redis_server.info("stats")["total_connections_received"]
            statuses = [http_json("GET", f"{base}/bots", token=token)[0] for _ in range(40)]
            opened = redis_server.info("stats")["total_connections_received"] - before

    assert statuses == [200] * 40  # each read the bots from the cache in Redis
    assert len(claire.calls("GET", "/m2m/organizations/bots")) == 1
    assert opened <= 4, f"{opened} Redis connections opened for 40 requests"
