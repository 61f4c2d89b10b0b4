"""The Redis channel layer as configured: hundreds of concurrent operations in one process (live
answers publishing, sockets subscribing) must not run out of Redis connections."""

from __future__ import annotations

import asyncio
import uuid

from channels_redis.core import RedisChannelLayer

from config.settings import redis_channel_layer
from config.testing.processes import REDIS_TEST_URL, redis_is_reachable, require

CONCURRENT = 300  # three times redis-py 8's default pool size


async def test_the_redis_channel_layer_takes_hundreds_of_concurrent_sends_and_receives():
    require(redis_is_reachable(), "Redis")
    config = redis_channel_layer(REDIS_TEST_URL)["CONFIG"]
    layer = RedisChannelLayer(**{**config, "prefix": f"test-{uuid.uuid4().hex[:8]}"})
    try:
        channels = [await layer.new_channel() for _ in range(CONCURRENT)]
        await asyncio.gather(*(layer.send(name, {"type": "probe", "n": n}) for n, name in enumerate(channels)))
        received = await asyncio.wait_for(asyncio.gather(*(layer.receive(name) for name in channels)), 30)
        assert [message["n"] for message in received] == list(range(CONCURRENT))
    finally:
        await layer.flush()
        await layer.close_pools()
