"""The channel layers as configured. Redis: hundreds of concurrent operations in one process (live
answers publishing, sockets subscribing) must not run out of Redis connections. In-memory: the
stock layer's semantics (capacity, expiry, group expiry) with its sweep run at most once an interval."""

from __future__ import annotations

import asyncio
import time
import uuid

import pytest
from channels.exceptions import ChannelFull
from channels_redis.core import RedisChannelLayer

from config.channel_layers import InMemoryChannelLayer
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


async def receive(layer, channel: str) -> dict:
    return await asyncio.wait_for(layer.receive(channel), 5)


async def nothing_received(layer, channel: str) -> bool:
    try:
        await asyncio.wait_for(layer.receive(channel), 0.2)
    except asyncio.TimeoutError:
        return True
    return False


async def test_the_in_memory_layer_never_delivers_an_expired_message_and_ends_its_channels_memberships():
    layer = InMemoryChannelLayer(expiry=0.05, clean_interval=3600)
    await layer.group_send("warm-up", {"type": "x"})  # the first sweep: the next is an hour away
    channel = await layer.new_channel()
    await layer.group_add("watchers", channel)
    await layer.send(channel, {"type": "old"})
    await asyncio.sleep(0.1)
    await layer.send(channel, {"type": "fresh"})

    assert await receive(layer, channel) == {"type": "fresh"}
    await layer.group_send("watchers", {"type": "after"})
    assert await nothing_received(layer, channel), "an expired message ends the channel's memberships"


async def test_the_in_memory_layer_sweeps_every_channel_once_the_interval_is_over():
    layer = InMemoryChannelLayer(expiry=0.05, clean_interval=0.1)
    await layer.group_send("warm-up", {"type": "x"})
    channel = await layer.new_channel()
    await layer.group_add("watchers", channel)
    await layer.send(channel, {"type": "old"})
    await asyncio.sleep(0.2)

    await layer.group_send("unrelated", {"type": "x"})  # sweeps: the old message and its memberships go
    await layer.group_send("watchers", {"type": "fresh"})
    assert await nothing_received(layer, channel)


async def test_the_in_memory_layer_does_not_sweep_on_every_message():
    layer = InMemoryChannelLayer(expiry=0.05, clean_interval=3600)
    await layer.group_send("warm-up", {"type": "x"})
    channel = await layer.new_channel()
    await layer.group_add("watchers", channel)
    await layer.send(channel, {"type": "old"})
    await asyncio.sleep(0.1)

    await layer.group_send("unrelated", {"type": "x"})  # no sweep: the next one is an hour away
    await layer.group_send("watchers", {"type": "fresh"})
    assert await receive(layer, channel) == {"type": "fresh"}, "the expired one is dropped, the fresh one kept"


async def test_the_in_memory_layer_keeps_its_capacity():
    layer = InMemoryChannelLayer(capacity=2)
    channel = await layer.new_channel()
    await layer.group_add("watchers", channel)
    await layer.send(channel, {"type": "one"})
    await layer.send(channel, {"type": "two"})
    with pytest.raises(ChannelFull):
        await layer.send(channel, {"type": "three"})
    await layer.group_send("watchers", {"type": "dropped"})  # silently, as channels does
    assert [await receive(layer, channel), await receive(layer, channel)] == [{"type": "one"}, {"type": "two"}]
    assert await nothing_received(layer, channel)


async def test_the_in_memory_layer_ends_group_memberships_after_group_expiry():
    layer = InMemoryChannelLayer(group_expiry=0, clean_interval=0)
    channel = await layer.new_channel()
    await layer.group_add("watchers", channel)
    await asyncio.sleep(int(time.time()) + 1.05 - time.time())  # memberships expire by whole seconds
    await layer.group_send("watchers", {"type": "late"})
    assert await nothing_received(layer, channel)
