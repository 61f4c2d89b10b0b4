"""What a serving process does once its application is loaded, before the first request, and when it stops."""

from __future__ import annotations

import asyncio
import gc
import logging
import sys
from collections.abc import Awaitable, Callable

from django.urls import get_resolver

logger = logging.getLogger(__name__)

_serving_loop: asyncio.AbstractEventLoop | None = None


def freeze_startup_heap() -> None:
    """Load every view now, then move everything alive into the collector's permanent generation.

    A loaded Conduit process holds some 250,000 collector-tracked objects (Django, DRF, the SDKs)
    that live as long as it does. Without this, each full collection walks all of them: 110-170 ms with the whole
    process stopped, about once a second under load, which was the ~200 ms p99 seen on every path
    (bench/RESULTS.md). Frozen, they are never walked again; full collections take a few ms.
    Calling it again (config.asgi after config.wsgi) freezes what was loaded since, cheaply."""
    get_resolver().url_patterns  # imports every URLconf and view module (else the first request does)
    gc.collect()
    gc.freeze()


def start_serving_duties() -> None:
    """Start this process's periodic duties (registered with `serving_duty`) when its server starts.

    Called by config/asgi.py. Only a daphne server (`manage.py run`, `runserver`) runs them: daphne
    installs Twisted's asyncio reactor before it loads the application, and the duties start when
    that reactor runs. Anything else that imports config.asgi (tests, scripts) and management
    commands (migrate…), which never import it, start nothing."""
    if "daphne.server" not in sys.modules:
        return
    from twisted.internet import reactor

    reactor.callWhenRunning(_on_server_start)


_serving_duties: list[Callable[[asyncio.AbstractEventLoop], None]] = []
_stopping_duties: list[Callable[[], Awaitable[None]]] = []
STOPPING_DUTY_TIMEOUT = 10.0  # seconds each may take (`manage.py run` kills a worker 10 s after SIGTERM)


def serving_duty(start: Callable[[asyncio.AbstractEventLoop], None]) -> Callable[[asyncio.AbstractEventLoop], None]:
    """Register `start(loop)`, called once when a serving process's server starts (apps register their
    periodic duties in `AppConfig.ready`; this module knows no app)."""
    _serving_duties.append(start)
    return start


def stopping_duty(stop: Callable[[], Awaitable[None]]) -> Callable[[], Awaitable[None]]:
    """Register `stop()`, a coroutine function awaited on the server's loop when a serving process's
    server stops (SIGTERM, SIGINT), before it exits; bounded by STOPPING_DUTY_TIMEOUT."""
    _stopping_duties.append(stop)
    return stop


def _on_server_start() -> None:
    global _serving_loop
    from twisted.internet import reactor

    _serving_loop = asyncio.get_event_loop()  # daphne's: it sets the reactor's loop as the current one
    for start in _serving_duties:
        start(_serving_loop)
    reactor.addSystemEventTrigger("before", "shutdown", _on_server_stop)


def _on_server_stop():
    """The stopping duties, as a Deferred the reactor waits for before it stops."""
    from twisted.internet.defer import Deferred

    async def run_all() -> None:
        for stop in _stopping_duties:
            try:
                await asyncio.wait_for(stop(), STOPPING_DUTY_TIMEOUT)
            except Exception:  # noqa: BLE001 - one failed duty must not keep the others from running
                logger.exception("A stopping duty failed: %s", getattr(stop, "__qualname__", stop))

    return Deferred.fromFuture(asyncio.ensure_future(run_all(), loop=_serving_loop))


def serving_loop() -> asyncio.AbstractEventLoop | None:
    """The server's event loop in a serving process (None elsewhere)."""
    return _serving_loop
