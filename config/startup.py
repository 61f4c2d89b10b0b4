"""What a serving process does once its application is loaded, before the first request."""

from __future__ import annotations

import gc

from django.urls import get_resolver


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
