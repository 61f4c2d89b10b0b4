"""Reads of connections, filtered for ownership."""

from __future__ import annotations

from django.db.models import QuerySet

from config import untrusted
from connections.models import Connection


def connection_list(*, user) -> QuerySet[Connection]:
    return Connection.objects.filter(user=user).select_related("integration")


def _id(value: str) -> int | None:
    return int(value) if untrusted.is_ascii_digits(value) and len(value) <= 18 else None


def connection_get(*, user, connection_id: str) -> Connection | None:
    pk = _id(connection_id)
    return None if pk is None else connection_list(user=user).select_related("client").filter(pk=pk).first()


def integration_for_connect(*, user, integration_id: str):
    """An integration the user may use (their own or the organization's), by id from a URL."""
    from agents.selectors import integration_visible

    pk = _id(integration_id)
    return None if pk is None else integration_visible(user=user).filter(pk=pk).first()
