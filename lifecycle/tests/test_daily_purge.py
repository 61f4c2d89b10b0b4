"""The serving processes' daily purge: claimed on the clock, run off the request lanes."""

from __future__ import annotations

import asyncio
import threading

import pytest

from lifecycle import purge
from lifecycle.apps import _start_daily_purge
from lifecycle.models import PurgeClock

pytestmark = pytest.mark.django_db(transaction=True)


async def test_a_serving_process_claims_the_days_purge_and_runs_it(monkeypatch):
    monkeypatch.setattr(purge, "FIRST_LOOK_AFTER", 0)
    ran = threading.Event()
    real = purge._purge_off_the_lanes

    def watched():
        try:
            return real()
        finally:
            ran.set()

    monkeypatch.setattr(purge, "_purge_off_the_lanes", watched)
    task = asyncio.create_task(purge.daily_purger())
    try:
        assert await asyncio.to_thread(ran.wait, 10)
    finally:
        task.cancel()
    assert await PurgeClock.objects.filter(last_run__isnull=False).aexists()


def test_no_daily_purge_when_turned_off(settings):
    settings.PURGE_ON_SERVE = False
    started = []

    class Loop:
        def create_task(self, coroutine, name=None):
            started.append(name)
            coroutine.close()

    _start_daily_purge(Loop())
    assert started == []
    settings.PURGE_ON_SERVE = True
    _start_daily_purge(Loop())
    assert started == ["lifecycle-daily-purge"]
