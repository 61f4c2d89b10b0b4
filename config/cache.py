"""Django's Redis cache, with its connection pools kept for the whole process and one redis-py client
per pool.

- Pools for the process: Django keeps cache objects per *context* (`caches` is an asgiref `Local`
  that is not thread-critical), and each request served through the WSGI bridge runs in a fresh
  copy of the event loop's context (config/http/wsgi_bridge.py). So every request made a new cache
  object, with a new connection pool, and opened a new Redis connection (TCP, HELLO, CLIENT
  SETINFO, whose driver-info lookup reads package metadata from disk): about 1 ms per request
  that touched the cache (`GET /bots` at 1 connection, p50 2.1 → 1.05 ms), and a connection left for
  the garbage collector to close (bench/RESULTS.md, issue 18). Cache objects may come and go; the
  client they talk through, and its pools, are the process's, one per configuration.
- One client per pool: Django's `RedisCacheClient.get_client()` builds a `redis.Redis` around the
  pool on each call, and redis-py builds its table of ~170 response callbacks in that constructor
  (0.065 ms of CPU per cache call). A `redis.Redis` on a pool is safe to share between threads (each
  command takes a connection from the pool). redis-py resets a pool inherited across a fork.
"""

from __future__ import annotations

import threading

from django.core.cache.backends import redis as django_redis
from django.utils.functional import cached_property


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


_process_clients: dict[str, _ClientPerPoolCacheClient] = {}
_process_clients_lock = threading.Lock()


class RedisCache(django_redis.RedisCache):
    @cached_property
    def _cache(self) -> _ClientPerPoolCacheClient:
        configuration = repr((self._servers, sorted(self._options.items())))
        client = _process_clients.get(configuration)
        if client is None:
            with _process_clients_lock:
                client = _process_clients.get(configuration)
                if client is None:
                    client = _ClientPerPoolCacheClient(self._servers, **self._options)
                    _process_clients[configuration] = client
        return client
