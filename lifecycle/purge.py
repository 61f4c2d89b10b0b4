"""Retention: what is deleted because it is older than the policy says (docs/data-lifecycle.md).

`purge_expired()` is the one purge; `manage.py purge_expired` runs it (from cron, on any replica,
concurrently: every step re-reads what it deletes, a chunk at a time), and each serving process runs
`daily_purger`, which claims the day's purge through PurgeClock so one replica of all does it.
Users on legal hold are left out of every step; usage counters are never purged (aggregates).
"""

from __future__ import annotations

import asyncio
import logging
from datetime import timedelta

from auditlog.models import LogEntry
from django.conf import settings
from django.db import connection
from django.db.models import Exists, OuterRef, Q, QuerySet
from django.utils import timezone

from accounts.models import User
from agents.models import AIAgent, UserAgentSession
from assistant.models import TurnEvent
from audit.models import AuditEvent
from config.threads import run_sync
from lifecycle.export import exports_expired_delete
from lifecycle.models import PurgeClock
from lifecycle.stores import delete_in_chunks, sessions_delete_all

logger = logging.getLogger(__name__)

PURGE_EVERY = timedelta(days=1)
CLAIM_CHECK_INTERVAL = 3600.0  # seconds between a serving process's looks at the clock
FIRST_LOOK_AFTER = 60.0  # seconds after the server starts (not in the way of its start, nor of short-lived test servers)


def _held_users() -> QuerySet:
    return User.objects.filter(legal_hold=True)


def expired_sessions(*, now=None) -> QuerySet[UserAgentSession]:
    """Sessions past their retention: last activity (`updated_at`, moved by every turn) older than
    RETENTION_DAYS or their agent's `retention_days`, whichever is sooner; none of a user on hold."""
    now = now or timezone.now()
    expired = Q()
    if settings.RETENTION_DAYS:
        expired |= Q(updated_at__lt=now - timedelta(days=settings.RETENTION_DAYS))
    # Agents that keep less: a handful of rows (staff set them), one condition each.
    shorter = AIAgent.objects.filter(retention_days__isnull=False)
    if settings.RETENTION_DAYS:
        shorter = shorter.filter(retention_days__lt=settings.RETENTION_DAYS)
    for agent_id, days in shorter.values_list("pk", "retention_days").iterator(chunk_size=500):
        expired |= Q(agent_id=agent_id, updated_at__lt=now - timedelta(days=days))
    if not expired:
        return UserAgentSession.objects.none()
    return UserAgentSession.objects.filter(expired).exclude(owner__legal_hold=True)


def turn_events_expired(*, now=None) -> QuerySet[TurnEvent]:
    """Replay events older than TURN_EVENTS_RETENTION_DAYS, except each session's last one (the next
    turn numbers its events after it) and those of users on hold."""
    if not settings.TURN_EVENTS_RETENTION_DAYS:
        return TurnEvent.objects.none()
    cutoff = (now or timezone.now()) - timedelta(days=settings.TURN_EVENTS_RETENTION_DAYS)
    later = TurnEvent.objects.filter(session_id=OuterRef("session_id"), seq__gt=OuterRef("seq"))
    return (
        TurnEvent.objects.filter(created_at__lt=cutoff)
        .filter(Exists(later))
        .exclude(session__owner__legal_hold=True)
    )


def audit_expired(*, now=None) -> tuple[QuerySet, QuerySet]:
    """Audit events and model-change log entries older than AUDIT_RETENTION_DAYS, except those whose
    actor is on hold."""
    if not settings.AUDIT_RETENTION_DAYS:
        return AuditEvent.objects.none(), LogEntry.objects.none()
    cutoff = (now or timezone.now()) - timedelta(days=settings.AUDIT_RETENTION_DAYS)
    held = _held_users()
    # AuditEvent's own manager refuses deletes (append-only for every other path); retention is the
    # one sanctioned way rows leave, through the plain QuerySet.
    events = QuerySet(model=AuditEvent).filter(created_at__lt=cutoff).exclude(actor__in=held)
    events = events.exclude(actor_email__in=held.values("email"))
    entries = LogEntry.objects.filter(timestamp__lt=cutoff).exclude(actor__in=held)
    return events, entries


def purge_expired(*, now=None) -> dict[str, int]:
    """Delete everything past its retention; what was deleted, by kind."""
    now = now or timezone.now()
    counts = {"sessions": sessions_delete_all(expired_sessions(now=now))}
    counts["turn_events"] = delete_in_chunks(turn_events_expired(now=now))
    events, entries = audit_expired(now=now)
    counts["audit_events"] = delete_in_chunks(events)  # through the base manager (stores.delete_in_chunks)
    counts["audit_log_entries"] = delete_in_chunks(entries)
    counts["exports"] = exports_expired_delete(now=now)
    return counts


def purge_claim(*, now=None) -> bool:
    """Whether this process takes today's purge: one conditional UPDATE, won by one replica of all."""
    now = now or timezone.now()
    PurgeClock.objects.get_or_create(pk=PurgeClock.ROW)
    claimed = PurgeClock.objects.filter(pk=PurgeClock.ROW).filter(
        Q(last_run__isnull=True) | Q(last_run__lte=now - PURGE_EVERY)
    ).update(last_run=now)
    return claimed == 1


def purge_if_due() -> dict[str, int] | None:
    if not purge_claim():
        return None
    return _purge_logged()


def _purge_logged() -> dict[str, int]:
    counts = purge_expired()
    logger.info("Daily purge: %s", counts)
    return counts


def _purge_off_the_lanes() -> dict[str, int]:
    # A purge may take minutes: not on the lanes that serve turns and sockets (config/threads.py), and
    # its connection is closed after it, so a process holds one more only while it purges.
    try:
        return _purge_logged()
    finally:
        connection.close()


async def daily_purger() -> None:
    """Look at the clock every CLAIM_CHECK_INTERVAL seconds for as long as the process serves; purge when
    the day's purge falls to this process."""
    await asyncio.sleep(FIRST_LOOK_AFTER)
    while True:
        try:
            if await run_sync(purge_claim):
                await asyncio.to_thread(_purge_off_the_lanes)
        except asyncio.CancelledError:
            raise
        except Exception:  # noqa: BLE001 - a database hiccup must not end the purges for good
            logger.exception("Daily purge failed; trying again at the next look")
        await asyncio.sleep(CLAIM_CHECK_INTERVAL)
