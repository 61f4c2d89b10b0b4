"""Django's Redis cache, with one redis-py client per connection pool instead of a new one for every
cache call.

Django's `RedisCacheClient.get_client()` builds a `redis.Redis` around the shared pool on each call, and
redis-py builds its table of ~170 response callbacks in that constructor: 0.065 ms of CPU per cache
call, a third of a cache read's cost (bench/RESULTS.md, issue 18). A `redis.Redis` on a pool is safe to
share between threads (each command takes a connection from the pool), so one is kept per pool.
"""

from __future__ import annotations

import threading

from django.core.cache.backends import redis as django_redis


class _ClientPerPoolCacheClient(django_redis.RedisCacheClient):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._clients: dict[int, object] = {}
        self._clients_lock = threading.Lock()

    def get_client(self, key=None, *, write=False):
        pool = self._get_connection_pool(write)
        client = self._clients.get(id(pool))  # the pools live as long as this object (self._pools)
        if client is None:
            with self._clients_lock:
                client = self._clients.setdefault(id(pool), self._client(connection_pool=pool))
        return client


class RedisCache(django_redis.RedisCache):
    def __init__(self, server, params):
        super().__init__(server, params)
        self._class = _ClientPerPoolCacheClient
