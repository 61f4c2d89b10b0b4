"""The catalog version: what serving processes check before re-reading agents and their parts."""

from __future__ import annotations

from django.db import models


class Catalog(models.Model):
    """One row whose `version` grows in the transaction of every change to what turns read: agents and
    their versions, LLM configs, prompts, integrations, budgets and group membership
    (agents/catalog.py). Each serving process keeps what it resolved until the version moves
    (assistant/runs/catalog.py), reading only this number at a turn's start."""

    ROW = 1

    version = models.PositiveBigIntegerField(default=0)

    class Meta:
        verbose_name = "catalog version"

    def __str__(self) -> str:
        return f"catalog v{self.version}"
