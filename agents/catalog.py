"""The catalog's version: one number that moves in the transaction of every change to what a turn reads
of agents, their versions, LLM configs, prompts and integrations (and, from the usage app, budgets and
group membership). A serving process keeps what it resolved for turns until the number moves
(assistant/runs/catalog.py); a turn reads only the number.

Changes are seen through model signals (agents/signals.py, usage/signals.py), which Django sends for
saves, deletes (cascades and the admin's bulk delete included) and many-to-many changes; a
`QuerySet.update()` of these models sends none, so a service that does one calls `catalog_changed()`.

When the row is missing (a test database flushed between tests) it is made again with a number
taken from the clock, so no process can mistake the new catalog for one it has seen.
"""

from __future__ import annotations

import time

from django.db import IntegrityError, transaction
from django.db.models import F

from agents.models import Catalog


def catalog_version() -> int:
    """The current version (call it in the transaction that then reads the catalog, before reading)."""
    version = Catalog.objects.filter(pk=Catalog.ROW).values_list("version", flat=True).first()
    return version if version is not None else _recreate()


def catalog_changed(**_signal_kwargs) -> None:
    """Move the version (a signal receiver too: any arguments are ignored)."""
    if not Catalog.objects.filter(pk=Catalog.ROW).update(version=F("version") + 1):
        _recreate()


def _recreate() -> int:
    version = time.time_ns()
    try:
        with transaction.atomic():
            Catalog.objects.create(pk=Catalog.ROW, version=version)
    except IntegrityError:  # made meanwhile by another transaction
        return catalog_version()
    return version
