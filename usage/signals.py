"""Budgets and who belongs to which group decide a user's limits, which serving processes keep until
the catalog's version moves (agents/catalog.py)."""

from __future__ import annotations

from django.contrib.auth import get_user_model
from django.db.models.signals import m2m_changed, post_delete, post_save

from agents.catalog import catalog_changed
from usage.models import Budget

post_save.connect(catalog_changed, sender=Budget, dispatch_uid="usage.catalog_budget_saved")
post_delete.connect(catalog_changed, sender=Budget, dispatch_uid="usage.catalog_budget_deleted")
m2m_changed.connect(catalog_changed, sender=get_user_model().groups.through, dispatch_uid="usage.catalog_groups")
