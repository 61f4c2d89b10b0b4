"""config.cache.RedisCache: Django's Redis cache with one redis-py client per pool, shared by threads."""

from __future__ import annotations

import threading
import uuid

from config.cache import RedisCache
from config.testing.processes import REDIS_TEST_URL, redis_is_reachable, require


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
