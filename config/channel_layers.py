"""Channels' in-memory channel layer (one process, no Redis), without its per-message sweep."""

from __future__ import annotations

import time

from channels import layers
from channels.exceptions import ChannelFull


class InMemoryChannelLayer(layers.InMemoryChannelLayer):
    """Channels' `InMemoryChannelLayer`, sweeping expired messages and group memberships at most
    every `clean_interval` seconds instead of on every `group_send` and `receive`, and sending to a
    group's members without a task each.

    The stock sweep visits every channel and every group: O(open sockets) per message. With 1,000
    sockets and 2,000 messages a second that was a large part of the process's time
    (bench/RESULTS.md). Capacity is unchanged; an expired message is still never received (each
    `receive` drops its own channel's expired messages first, as the sweep would); other channels'
    expired messages and memberships older than `group_expiry` go at the next sweep, at most
    `clean_interval` seconds late.
    """

    def __init__(self, clean_interval: float = 1.0, **kwargs) -> None:
        super().__init__(**kwargs)
        self.clean_interval = clean_interval
        self._next_clean = 0.0

    def _clean_expired(self) -> None:
        now = time.monotonic()
        if now < self._next_clean:
            return
        self._next_clean = now + self.clean_interval
        super()._clean_expired()

    async def group_send(self, group: str, message: dict) -> None:
        # The stock method starts a task per member and waits for them all; `send` never waits
        # (it puts or raises ChannelFull), so sending in a loop does the same, without the tasks.
        assert isinstance(message, dict), "Message is not a dict"
        self.require_valid_group_name(group)
        self._clean_expired()
        for channel in list(self.groups.get(group, ())):
            try:
                await self.send(channel, message)
            except ChannelFull:
                pass  # dropped silently, as the stock layer does

    async def receive(self, channel: str) -> dict:
        self._expire(channel)
        return await super().receive(channel)

    def _expire(self, channel: str) -> None:
        """The stock sweep's work for one channel."""
        queue = self.channels.get(channel)
        while queue is not None and not queue.empty() and queue._queue[0][0] < time.time():
            queue.get_nowait()
            self._remove_from_groups(channel)  # as the stock layer does: an expiry ends memberships
            if queue.empty():
                self.channels.pop(channel, None)
