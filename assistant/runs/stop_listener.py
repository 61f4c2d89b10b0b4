"""Stopping a turn from any process: one channel per process in the control group of each of its
turns (runs/control.py sends the stop there)."""

from __future__ import annotations

import asyncio
import weakref

from assistant.runs.groups import control_group


class StopListener:
    """One channel per process, in the control group of every turn this process runs: a stop
    asked for on any process reaches the runner here. (One receive loop for all turns, rather
    than one blocked receive per turn.)"""

    def __init__(self, layer, running: dict) -> None:
        self.layer = layer
        self.running = running  # session id → this process's runner of its turn
        self.channel: str | None = None
        self.task: asyncio.Task | None = None

    async def watch(self, session_id: int) -> None:
        if self.channel is None:
            # The default prefix: channels-redis runs one receive loop for all of a process's channels.
            self.channel = await self.layer.new_channel()
        if self.task is None or self.task.done():
            self.task = asyncio.create_task(self._listen(), name="assistant-stop-listener")
        await self.layer.group_add(control_group(session_id), self.channel)

    async def unwatch(self, session_id: int) -> None:
        if self.channel is not None:
            await self.layer.group_discard(control_group(session_id), self.channel)

    async def _listen(self) -> None:
        while True:
            message = await self.layer.receive(self.channel)
            runner = self.running.get(message.get("session_id"))
            if message.get("type") == "turn.stop" and runner is not None:
                runner.request_stop()


_stop_listeners: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()  # channel layer → listener


def stop_listener(layer, running: dict) -> StopListener:
    """The process's listener on this channel layer (one per layer: tests swap layers)."""
    listener = _stop_listeners.get(layer)
    if listener is None:
        listener = _stop_listeners[layer] = StopListener(layer, running)
    return listener


