"""Erasure (the GDPR right to be forgotten): everything of a user, everywhere, except what the
organization must keep in numbers — usage counters and audit rows stay, with the user replaced by an
anonymous marker (`erased-<12 hex>`), and one audit row records who erased whom (as that marker) and when.

Order matters, for a request that can fail half-way and be run again:
1. a user on legal hold is refused, before anything changes;
2. their Claire sessions are deleted at Claire (an upstream failure stops here, nothing else changed:
   no remote copy is ever orphaned by a local erasure);
3. the account is deactivated (its tokens and API keys stop working, its sockets close, at commit);
4. their sessions, files, exports, prompts, agents, configs, integrations and connections (revoked at
   their servers) are deleted in bounded steps;
5. in one transaction: audit rows anonymized, usage counters re-labelled, browser sessions dropped, the
   user deleted (refresh records, API keys, budgets go with it), the erasure recorded.
django-auditlog records nothing during 4 and 5 (its rows would copy what is being erased).
"""

from __future__ import annotations

import logging
import re
import secrets
from collections.abc import Callable
from typing import Any

from auditlog.context import disable_auditlog
from auditlog.models import LogEntry
from django.conf import settings
from django.contrib.admin.models import LogEntry as AdminLogEntry
from django.contrib.contenttypes.models import ContentType
from django.contrib.sessions.models import Session
from django.db import models, transaction
from django.db.models import Q
from django.db.models.functions import Cast
from django.utils import timezone

from accounts.models import User
from agents.models import AIAgent, Integration, LLMProviderConfig, PromptTemplate, UserAgentSession
from audit.models import AuditEvent
from connections.models import Connection
from connections.services import connection_delete
from lifecycle.export import export_delete
from lifecycle.models import Export
from lifecycle.stores import id_chunks, sessions_delete_all
from orgproxy import claire_client
from orgproxy.models import ClientSession
from orgproxy.selectors import bots_list, claire_user_id
from usage.models import UsageCounter

logger = logging.getLogger(__name__)

ERASED = "[erased]"
HELD = "This account is under legal hold: it can't be erased until the hold is released."
CLAIRE_PAGES_MAX = 100  # pages of a user's sessions listed at Claire (a page holds many)
SCRUB_CHUNK = 500


class ErasureRefused(Exception):
    """The erasure can't be done now; nothing was changed. `status`/`code`: 409 `legal_hold`, 409
    `agent_in_use` (others' sessions use an agent of theirs), 502 `upstream_error` (Claire)."""

    def __init__(self, message: str, *, status: int, code: str):
        super().__init__(message)
        self.status = status
        self.code = code


def user_erase(*, user: User, by: User | None = None, source: str = "api") -> str:
    """Erase `user` (see the module's docstring); `by`: the staff member who did it (None: the user
    themselves). Returns the anonymous marker that replaces them in audit rows and usage counters."""
    if User.objects.filter(pk=user.pk, legal_hold=True).exists():
        raise ErasureRefused(HELD, status=409, code="legal_hold")
    # Sessions keep their agent (RESTRICT): another user's session with an agent of theirs (only staff
    # can make one) would stop the erasure half-way, so it is refused before anything changes.
    if UserAgentSession.objects.filter(agent__owner=user).exclude(owner=user).exists():
        raise ErasureRefused("Other users have sessions with this user's agents; staff must delete those sessions "
                             "or the agents first.", status=409, code="agent_in_use")  # fmt: skip
    _claire_sessions_delete(user)
    with transaction.atomic():
        locked = User.objects.select_for_update().get(pk=user.pk)
        if locked.legal_hold:  # put on hold meanwhile
            raise ErasureRefused(HELD, status=409, code="legal_hold")
        if locked.is_active:
            locked.is_active = False
            locked.save(update_fields=["is_active", "updated_at"])  # ends their sessions (accounts.models)
    marker = f"erased-{secrets.token_hex(6)}"
    needles = _needles(locked)
    with disable_auditlog():
        counts = _owned_data_delete(locked, needles)
        with transaction.atomic():
            _audit_anonymize(locked, marker, needles)
            UsageCounter.objects.filter(user=locked).update(user=None, erased_as=marker)
            _browser_sessions_delete(locked.pk)
            user_id = locked.pk
            locked.delete()
            QuerySetAudit.create(
                kind=AuditEvent.Kind.USER_ERASED,
                actor=by,
                actor_email=by.email if by is not None else marker,
                source=source,
                input={"erased": marker, **counts},
                outcome=AuditEvent.Outcome.OK,
            )
    logger.info("User %s erased as %s by %s", user_id, marker, by.pk if by is not None else "themselves")
    return marker


class QuerySetAudit:
    """Writing and rewriting audit events: AuditEvent's own manager refuses updates (append-only for
    every other path); erasure is the one sanctioned rewrite, through the plain QuerySet."""

    @staticmethod
    def create(**fields: Any) -> AuditEvent:
        return AuditEvent.objects.create(**fields)

    @staticmethod
    def rows() -> models.QuerySet[AuditEvent]:
        return models.QuerySet(model=AuditEvent)


# --- 2. Claire ----------------------------------------------------------------------------------


def _claire_sessions_delete(user: User) -> None:
    """Delete the user's Claire sessions at Claire: those recorded here, and those Claire lists for the
    user's id (made before this server kept records). A 404 is a session already gone."""
    records = ClientSession.objects.filter(user=user)
    if not settings.CLAIRE_API_KEY:
        if records.exists():
            raise ErasureRefused("The user has Claire sessions, and Claire is not configured (CLAIRE__API_KEY): "
                                 "they can't be deleted there.", status=502, code="upstream_error")  # fmt: skip
        return
    try:
        bot_ids = [bot["bot_id"] for bot in bots_list()]
        cursor, upstream_user = None, claire_user_id(user=user)
        for _ in range(CLAIRE_PAGES_MAX) if bot_ids else ():
            page = claire_client.sessions_list(user_id=upstream_user, bot_ids=bot_ids, cursor=cursor)
            ClientSession.objects.bulk_create(
                [ClientSession(session_id=item["session_id"], user=user, upstream_user_id=upstream_user)
                 for item in page["results"]],
                ignore_conflicts=True,
            )  # fmt: skip
            cursor = page["cursor"]["cursor_id"] if page["cursor"] else None
            if cursor is None:
                break
        for ids in id_chunks(records):
            for record in ClientSession.objects.filter(pk__in=ids):
                if record.user_id != user.pk:
                    continue  # someone else's (recorded before this user listed it): never deleted for them
                try:
                    claire_client.session_delete(session_id=record.session_id)
                except claire_client.UpstreamStatusError as exc:
                    if exc.upstream_status != 404:
                        raise
                record.delete()
    except claire_client.ClaireError as exc:
        logger.warning("Erasure of user %s stopped: Claire sessions not deleted (%s)", user.pk, exc)
        raise ErasureRefused("Claire could not delete the user's sessions; nothing was erased. Try again later.",
                             status=502, code="upstream_error") from exc  # fmt: skip


# --- 4. what the user owns ----------------------------------------------------------------------


def _owned_data_delete(user: User, needles: list[str]) -> dict[str, int]:
    counts = {"sessions": sessions_delete_all(UserAgentSession.objects.filter(owner=user))}
    exports = 0
    for ids in id_chunks(Export.objects.filter(user=user)):
        for export in Export.objects.filter(pk__in=ids):
            export_delete(export)
            exports += 1
    counts["exports"] = exports
    counts["connections"] = 0
    for ids in id_chunks(Connection.objects.filter(user=user)):
        for connection in Connection.objects.filter(pk__in=ids).select_related("client", "integration"):
            connection_delete(connection=connection)  # revoked at its server first (RFC 7009)
            counts["connections"] += 1
    # Others' agents that used a prompt of theirs are told, as when any prompt is deleted
    # (agents.services.prompt_delete): they refuse turns naming it until given a prompt again.
    for ids in id_chunks(PromptTemplate.objects.filter(owner=user)):
        for prompt_id, name in PromptTemplate.objects.filter(pk__in=ids).values_list("pk", "name"):
            AIAgent.objects.filter(system_prompt_id=prompt_id).exclude(owner=user).update(
                system_prompt=None, system_prompt_lost=name[:255]
            )
    # Agents before the prompts and configs they use; the audit log of each object is scrubbed with it.
    for model, key in ((AIAgent, "agents"), (PromptTemplate, "prompts"), (LLMProviderConfig, "llm_configs"),
                       (Integration, "integrations")):  # fmt: skip
        counts[key] = 0
        content_type = ContentType.objects.get_for_model(model)
        for ids in id_chunks(model.objects.filter(owner=user)):
            _scrub_entries(LogEntry.objects.filter(content_type=content_type, object_pk__in=[str(i) for i in ids]),
                           _erase_entry)  # fmt: skip
            with transaction.atomic():
                _, per_model = model.objects.filter(pk__in=ids).delete()
            counts[key] += per_model.get(model._meta.label, 0)
    return counts


# --- 5. audit rows, browser sessions ------------------------------------------------------------


def _needles(user: User) -> list[str]:
    """The strings that name the user in free text: the email, and the name when it is distinctive
    enough to replace (a two-letter name would mangle unrelated words)."""
    needles = [user.email]
    if len(user.name.strip()) >= 3:
        needles.append(user.name.strip())
    return needles


def _replace(value: Any, needles: list[str], marker: str) -> Any:
    """`value` (text, or JSON of dicts and lists) with every needle replaced by the marker."""
    if isinstance(value, str):
        for needle in needles:
            value = _ireplace(value, needle, marker)
        return value
    if isinstance(value, dict):
        return {_replace(k, needles, marker): _replace(v, needles, marker) for k, v in value.items()}
    if isinstance(value, list):
        return [_replace(item, needles, marker) for item in value]
    return value


def _ireplace(text: str, needle: str, marker: str) -> str:
    return re.sub(re.escape(needle), lambda _: marker, text, flags=re.IGNORECASE)


def _scrub_entries(queryset: models.QuerySet, change: Callable[[LogEntry], None]) -> None:
    """Apply `change` to each log entry of `queryset`, a chunk at a time."""
    fields = ["object_repr", "changes", "changes_text", "serialized_data", "additional_data", "actor_email",
              "remote_addr", "remote_port"]  # fmt: skip
    for ids in id_chunks(queryset, size=SCRUB_CHUNK):
        entries = list(LogEntry.objects.filter(pk__in=ids))
        for entry in entries:
            change(entry)
        LogEntry.objects.bulk_update(entries, fields)


def _erase_entry(entry: LogEntry) -> None:
    """A change of something that was the user's: kept as a fact (what, when, which fields), its
    contents gone."""
    entry.object_repr = ERASED
    if isinstance(entry.changes, dict):
        entry.changes = {field: [ERASED, ERASED] for field in entry.changes}
    entry.changes_text = ""
    entry.serialized_data = None
    entry.additional_data = None


def _audit_anonymize(user: User, marker: str, needles: list[str]) -> None:
    # django-auditlog: what they did (the actor is unlinked by the delete), what was done to their
    # account, and any other row whose text names them (e.g. their budget, "Budget of <email>").
    def as_actor(entry: LogEntry) -> None:
        entry.actor_email, entry.remote_addr, entry.remote_port = marker, None, None
        _replace_in_entry(entry, needles, marker)

    _scrub_entries(LogEntry.objects.filter(actor=user), as_actor)
    _scrub_entries(LogEntry.objects.filter(actor_email__iexact=user.email), as_actor)
    user_type = ContentType.objects.get_for_model(User)
    _scrub_entries(LogEntry.objects.filter(content_type=user_type, object_pk=str(user.pk)), _erase_entry)
    naming = Q(object_repr__icontains=user.email) | Q(changes_text__icontains=user.email)
    naming |= Q(changes_as_text__icontains=user.email) | Q(serialized_as_text__icontains=user.email)
    others = LogEntry.objects.annotate(
        changes_as_text=Cast("changes", models.TextField()), serialized_as_text=Cast("serialized_data", models.TextField())
    ).filter(naming)
    _scrub_entries(others, lambda entry: _replace_in_entry(entry, needles, marker))
    # Django admin's history: their own rows go with them (its foreign key cascades); rows of staff's
    # changes to their account or naming them keep the fact, not the name.
    naming = Q(content_type=user_type, object_id=str(user.pk)) | Q(object_repr__icontains=user.email)
    naming |= Q(change_message__icontains=user.email)
    if len(needles) > 1:
        naming |= Q(object_repr__icontains=needles[1]) | Q(change_message__icontains=needles[1])
    for ids in id_chunks(AdminLogEntry.objects.filter(naming).exclude(user=user), size=SCRUB_CHUNK):
        rows = list(AdminLogEntry.objects.filter(pk__in=ids))
        for row in rows:
            row.object_repr = _replace(row.object_repr, needles, marker)
            row.change_message = _replace(row.change_message, needles, marker)
        AdminLogEntry.objects.bulk_update(rows, ["object_repr", "change_message"])
    # Conduit's audit events: the rows keep their numbers, the person becomes the marker.
    events = QuerySetAudit.rows()
    mine = events.filter(Q(actor=user) | Q(actor_email__iexact=user.email))
    for ids in id_chunks(mine, size=SCRUB_CHUNK):
        for event in events.filter(pk__in=ids):
            events.filter(pk=event.pk).update(
                actor_email=marker,
                ip=None,
                input=_replace(event.input, needles, marker),
                result_preview=_replace(event.result_preview, needles, marker),
                approval_reason=_replace(event.approval_reason, needles, marker),
            )
    approved = events.filter(Q(approved_by=user) | Q(approved_by_email__iexact=user.email))
    for ids in id_chunks(approved, size=SCRUB_CHUNK):
        events.filter(pk__in=ids).update(approved_by_email=marker)


def _replace_in_entry(entry: LogEntry, needles: list[str], marker: str) -> None:
    entry.object_repr = _replace(entry.object_repr, needles, marker)
    entry.changes = _replace(entry.changes, needles, marker)
    entry.changes_text = _replace(entry.changes_text, needles, marker)
    entry.serialized_data = _replace(entry.serialized_data, needles, marker)
    entry.additional_data = _replace(entry.additional_data, needles, marker)


def _browser_sessions_delete(user_id: int) -> None:
    """Django's sessions (the chat page's and the admin's cookies) hold the user's id: dropped. Decoded a
    chunk at a time, unexpired ones only (expired ones are cleared by `clearsessions`)."""
    live = Session.objects.filter(expire_date__gt=timezone.now())
    for keys in id_chunks(live, size=SCRUB_CHUNK):
        mine = [s.pk for s in Session.objects.filter(pk__in=keys) if s.get_decoded().get("_auth_user_id") == str(user_id)]
        if mine:
            Session.objects.filter(pk__in=mine).delete()


def erasure_preview(user: User) -> dict[str, Any]:
    """What an erasure would take, for the admin's confirmation page."""
    return {
        "sessions": UserAgentSession.objects.filter(owner=user).count(),
        "claire_sessions": ClientSession.objects.filter(user=user).count(),
        "legal_hold": user.legal_hold,
    }


