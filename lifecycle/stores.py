"""Deleting what a user's sessions hold, in bounded steps: shared by retention (purge.py) and erasure
(erase.py). A session with 100,000 messages is deleted a chunk of rows at a time, never loaded whole
(Django's cascade would fetch every message to cascade to its approvals)."""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from django.db import transaction
from django.db.models import QuerySet

from agents.models import Message, UserAgentSession
from agents.workspaces import workspace_remove
from assistant.models import Approval, ClientSessionAlias, TurnEvent

CHUNK = 1000  # rows deleted per statement
SESSIONS_PER_STEP = 100  # sessions whose rows are deleted per transaction


def delete_in_chunks(queryset: QuerySet, *, size: int = CHUNK) -> int:
    """Delete the rows of `queryset`, `size` primary keys at a time; the number deleted. Each chunk is
    read again, so rows another process deleted meanwhile are simply not found (safe concurrently)."""
    model = queryset.model
    total = 0
    while True:
        ids = list(queryset.order_by().values_list("pk", flat=True)[:size])
        if not ids:
            return total
        deleted, _ = model._base_manager.filter(pk__in=ids).delete()
        total += deleted
        if len(ids) < size:
            return total


def id_chunks(queryset: QuerySet, *, size: int = SESSIONS_PER_STEP) -> Iterator[list[int]]:
    """The primary keys of `queryset` in ascending chunks (keyset pagination: bounded memory, and rows
    deleted between chunks don't shift the pages)."""
    last = None
    while True:
        page = queryset.order_by("pk")
        if last is not None:
            page = page.filter(pk__gt=last)
        ids = list(page.values_list("pk", flat=True)[:size])
        if not ids:
            return
        yield ids
        last = ids[-1]


def sessions_delete(session_ids: Iterable[int]) -> int:
    """Delete these sessions with their messages, approvals, events, aliases and workspace files; the
    number of sessions deleted."""
    session_ids = list(session_ids)
    if not session_ids:
        return 0
    # Children first, in chunks; then the sessions themselves (their post_delete removes the
    # workspace after the commit, agents.signals; removed here too, for a session gone already).
    delete_in_chunks(Approval.objects.filter(session_id__in=session_ids))
    delete_in_chunks(TurnEvent.objects.filter(session_id__in=session_ids))
    delete_in_chunks(Message.objects.filter(session_id__in=session_ids))
    ClientSessionAlias.objects.filter(session_id__in=session_ids).delete()
    with transaction.atomic():
        _, per_model = UserAgentSession.objects.filter(pk__in=session_ids).delete()
    for session_id in session_ids:
        workspace_remove(session_id)
    return per_model.get(UserAgentSession._meta.label, 0)


def sessions_delete_all(queryset: QuerySet[UserAgentSession]) -> int:
    """Delete every session of `queryset`, SESSIONS_PER_STEP at a time."""
    total = 0
    for ids in id_chunks(queryset):
        total += sessions_delete(ids)
    return total
