"""A user's data as a zip (the GDPR right of access): everything they left behind, in JSON and, for
conversations, readable Markdown; never a secret (encrypted fields, API keys, tokens).

`export_start` records the request and, after the commit, builds the zip on a thread of its own,
streaming rows from the database a chunk at a time into a file under EXPORTS_DIR (zipfile writes each
entry as it goes), so neither the request nor memory waits for a large account. The owner downloads it
(a FileResponse streams it); it is deleted EXPORT_TTL_HOURS after it was asked for.
"""

from __future__ import annotations

import io
import json
import logging
import os
import stat
import threading
import uuid
import zipfile
from collections.abc import Iterable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

from auditlog.models import LogEntry
from django.conf import settings
from django.core.serializers.json import DjangoJSONEncoder
from django.db import close_old_connections, connection, models, transaction
from django.utils import timezone

from accounts.models import ApiKey, User
from agents.fields import EncryptedJSONField, EncryptedTextField
from agents.models import AIAgent, Integration, LLMProviderConfig, Message, PromptTemplate, UserAgentSession
from agents.workspaces import workspace_path
from audit.models import AuditEvent
from connections.models import Connection
from lifecycle.models import Export
from orgproxy.models import ClientSession
from usage.models import UsageCounter

logger = logging.getLogger(__name__)

ROWS_PER_READ = 500
STALE_AFTER = timedelta(hours=1)  # an export pending or building this long was lost (its process died)
_COPY_CHUNK = 256 * 1024


class ExportRefused(Exception):
    """Why an export can't start now (the message says, for the API's answer)."""

    def __init__(self, message: str, *, status: int, export: Export | None = None):
        super().__init__(message)
        self.status = status
        self.export = export


# --- starting, finding and ending exports -------------------------------------------------------


def export_file(export: Export) -> Path:
    return Path(settings.EXPORTS_DIR) / export.file_name


def export_for_user(*, user: User, export_id: str) -> Export | None:
    """The user's own export with this id, or None (someone else's answers the same as none)."""
    try:
        export_uuid = uuid.UUID(str(export_id))
    except ValueError:
        return None
    return Export.objects.filter(user=user, pk=export_uuid, expires_at__gt=timezone.now()).first()


def export_start(*, user: User, requested_by: User | None = None) -> Export:
    """Record an export of `user` and build it after the commit. Staff (`requested_by`) are not held to
    EXPORTS_PER_DAY; one export of a user is built at a time."""
    now = timezone.now()
    with transaction.atomic():
        User.objects.select_for_update().filter(pk=user.pk).first()  # concurrent starts take turns
        Export.objects.filter(
            user=user, state__in=[Export.State.PENDING, Export.State.RUNNING], created_at__lt=now - STALE_AFTER
        ).update(state=Export.State.FAILED, error="Interrupted: the server building it stopped.", finished_at=now)
        busy = Export.objects.filter(user=user, state__in=[Export.State.PENDING, Export.State.RUNNING]).first()
        if busy is not None:
            raise ExportRefused("An export of this account is being built; wait for it.", status=409, export=busy)
        if requested_by is None:
            recent = Export.objects.filter(user=user, requested_by__isnull=True, created_at__gt=now - timedelta(days=1))
            if recent.count() >= settings.EXPORTS_PER_DAY:
                raise ExportRefused(
                    f"At most {settings.EXPORTS_PER_DAY} exports a day; download one you made.", status=429
                )
        export = Export.objects.create(
            user=user, requested_by=requested_by, expires_at=now + timedelta(hours=settings.EXPORT_TTL_HOURS)
        )
        transaction.on_commit(lambda: _spawn(export.pk))
    return export


def export_delete(export: Export) -> None:
    """The export's row and files (the zip, or what a build that died left half-written)."""
    root = Path(settings.EXPORTS_DIR)
    for name in {export.file_name, f"{export.pk}.zip", f"{export.pk}.zip.part"} - {""}:
        (root / name).unlink(missing_ok=True)
    Export.objects.filter(pk=export.pk).delete()


def exports_expired_delete(*, now=None) -> int:
    """Delete exports past their expiry, files first; how many."""
    now = now or timezone.now()
    total = 0
    while batch := list(Export.objects.filter(expires_at__lte=now).order_by("pk")[:ROWS_PER_READ]):
        for export in batch:
            export_delete(export)
        total += len(batch)
    return total


# --- building, on a thread ----------------------------------------------------------------------

_threads: set[threading.Thread] = set()
_threads_lock = threading.Lock()


def _spawn(export_id) -> None:
    thread = threading.Thread(target=_build_in_thread, args=(export_id,), name=f"export-{export_id}", daemon=True)
    with _threads_lock:
        _threads.add(thread)
    thread.start()


def _build_in_thread(export_id) -> None:
    try:
        export_build(export_id)
    except Exception:  # noqa: BLE001 - logged; export_build marks the export failed itself
        logger.exception("Export %s failed", export_id)
    finally:
        connection.close()  # this thread's own database connection
        with _threads_lock:
            _threads.discard(threading.current_thread())


def exports_wait(timeout: float = 30.0) -> None:
    """Wait for the exports this process is building (tests; a clean shutdown)."""
    with _threads_lock:
        running = list(_threads)
    for thread in running:
        thread.join(timeout)


def _part(export: Export) -> Path:
    return Path(settings.EXPORTS_DIR) / f"{export.pk}.zip.part"


def export_build(export_id) -> Export | None:
    """Build one pending export (claimed once: a second call finds it taken). The export, or None."""
    close_old_connections()
    if not Export.objects.filter(pk=export_id, state=Export.State.PENDING).update(state=Export.State.RUNNING):
        return None
    export = Export.objects.select_related("user").get(pk=export_id)
    root = Path(settings.EXPORTS_DIR)
    root.mkdir(parents=True, exist_ok=True, mode=0o700)
    part = _part(export)
    try:
        with zipfile.ZipFile(part, "w", compression=zipfile.ZIP_DEFLATED) as archive:
            _write_all(archive, export.user)
        final = root / f"{export.pk}.zip"
        os.replace(part, final)
        os.chmod(final, 0o600)
    except Exception:
        part.unlink(missing_ok=True)
        Export.objects.filter(pk=export.pk).update(
            state=Export.State.FAILED, error="The export could not be built.", finished_at=timezone.now()
        )
        raise
    finished = Export.objects.filter(pk=export.pk).update(
        state=Export.State.READY, file_name=final.name, size=final.stat().st_size, finished_at=timezone.now()
    )
    if not finished:  # deleted meanwhile (the user erased, the export deleted by staff): no file left behind
        final.unlink(missing_ok=True)
        return None
    export.refresh_from_db()
    return export


# --- what goes in -------------------------------------------------------------------------------

README = """This archive holds the data {site} keeps about you, as of {when} (UTC).

profile.json          your account
sessions/             every conversation: <id>.json (messages as stored) and <id>.md (readable)
files/<session id>/   the files in each conversation's workspace
prompts.json          your prompts, with every version
agents.json           your agents
llm_configs.json      your model configurations (API keys left out)
integrations.json     your integrations (credentials left out)
connections.json      your connections to integrations (tokens left out)
claire_sessions.json  your organization-assistant sessions
usage.json            what you used, per month
api_keys.json         your API keys' names and dates (never the keys)
audit.json            audit records of what you did
"""

_SECRET_FIELDS = (EncryptedTextField, EncryptedJSONField)


def _row(obj: models.Model, *, exclude: tuple[str, ...] = ()) -> dict[str, Any]:
    """A model row's fields, never an encrypted one (secrets) nor those named in `exclude`."""
    row = {}
    for field in obj._meta.concrete_fields:
        if isinstance(field, _SECRET_FIELDS) or field.name in exclude:
            continue
        row[field.attname] = field.value_from_object(obj)
    return row


def _dumps(value: Any) -> str:
    return json.dumps(value, cls=DjangoJSONEncoder, ensure_ascii=False, indent=1)


def _text_entry(archive: zipfile.ZipFile, name: str) -> io.TextIOWrapper:
    return io.TextIOWrapper(archive.open(name, "w", force_zip64=True), encoding="utf-8", newline="\n")


def _json_entry(archive: zipfile.ZipFile, name: str, value: Any) -> None:
    with _text_entry(archive, name) as out:
        out.write(_dumps(value))


def _json_list_entry(archive: zipfile.ZipFile, name: str, rows: Iterable[Any]) -> None:
    """A JSON array written one element at a time (rows come from a chunked query)."""
    with _text_entry(archive, name) as out:
        out.write("[")
        for index, row in enumerate(rows):
            out.write(",\n" if index else "\n")
            out.write(_dumps(row))
        out.write("\n]\n")


def _chunked(queryset: models.QuerySet) -> Iterator:
    return queryset.iterator(chunk_size=ROWS_PER_READ)


def _write_all(archive: zipfile.ZipFile, user: User) -> None:
    archive.writestr("README.txt", README.format(site="Conduit", when=timezone.now().strftime("%Y-%m-%d %H:%M")))
    _json_entry(archive, "profile.json", _row(user, exclude=("password", "legal_hold", "is_superuser")))
    for session in _chunked(UserAgentSession.objects.filter(owner=user).select_related("agent").order_by("pk")):
        _write_session(archive, session)
        _write_workspace(archive, session.pk)
    _json_list_entry(archive, "prompts.json", _prompts(user))
    _json_list_entry(archive, "agents.json", (
        {**_row(agent), "integrations": list(agent.integrations.values_list("pk", flat=True))}
        for agent in _chunked(AIAgent.objects.filter(owner=user).order_by("pk"))
    ))  # fmt: skip
    _json_list_entry(archive, "llm_configs.json",
                     (_row(c) for c in _chunked(LLMProviderConfig.objects.filter(owner=user).order_by("pk"))))  # fmt: skip
    _json_list_entry(archive, "integrations.json",
                     (_integration(i) for i in _chunked(Integration.objects.filter(owner=user).order_by("pk"))))  # fmt: skip
    _json_list_entry(archive, "connections.json", (
        {**_row(c, exclude=("client",)), "integration_name": c.integration.name or c.integration.provider}
        for c in _chunked(Connection.objects.filter(user=user).select_related("integration").order_by("pk"))
    ))  # fmt: skip
    _json_list_entry(archive, "claire_sessions.json",
                     (_row(s) for s in _chunked(ClientSession.objects.filter(user=user).order_by("pk"))))  # fmt: skip
    _json_list_entry(archive, "usage.json", (
        _row(c, exclude=("id", "user", "erased_as")) for c in _chunked(UsageCounter.objects.filter(user=user).order_by("month"))
    ))  # fmt: skip
    _json_list_entry(archive, "api_keys.json", (
        _row(k, exclude=("prefix", "key_hash", "user")) for k in _chunked(ApiKey.objects.filter(user=user).order_by("pk"))
    ))  # fmt: skip
    _json_list_entry(archive, "audit.json", _audit(user))


def _prompts(user: User) -> Iterator[dict[str, Any]]:
    for prompt in _chunked(PromptTemplate.objects.filter(owner=user).order_by("pk")):
        versions = prompt.versions.order_by("version").values("version", "body", "shared", "created_at")
        yield {**_row(prompt), "versions": list(versions)}


def _integration(integration: Integration) -> dict[str, Any]:
    row = _row(integration, exclude=("mcp_server",))
    server = integration.mcp_server if isinstance(integration.mcp_server, dict) else {}
    # Headers and environment often carry tokens: their names only.
    row["mcp_server"] = {
        **{key: server[key] for key in ("type", "url", "command", "args") if key in server},
        **{key: sorted(server[key]) for key in ("headers", "env") if isinstance(server.get(key), dict)},
    }
    return row


def _audit(user: User) -> Iterator[dict[str, Any]]:
    events = models.QuerySet(model=AuditEvent).filter(actor=user).order_by("pk")
    for event in _chunked(events):
        yield {"log": "audit_event", **_row(event, exclude=("actor", "approved_by"))}
    entries = LogEntry.objects.filter(actor=user).select_related("content_type").order_by("pk")
    for entry in _chunked(entries):
        yield {
            "log": "model_change", "timestamp": entry.timestamp, "action": entry.get_action_display(),
            "object_type": entry.content_type.model, "object_id": entry.object_pk, "object": entry.object_repr,
            "changes": entry.changes,
        }  # fmt: skip


def _write_session(archive: zipfile.ZipFile, session: UserAgentSession) -> None:
    header = {
        **_row(session, exclude=("owner",)),
        "agent_slug": session.agent.slug,
        "agent_name": session.agent.name,
    }
    messages = Message.objects.filter(session=session).order_by("seq")
    with _text_entry(archive, f"sessions/{session.pk}.json") as out:
        out.write(_dumps(header)[:-1].rstrip() + ',\n "messages": [')
        for index, message in enumerate(_chunked(messages)):
            out.write(",\n" if index else "\n")
            out.write(_dumps(_row(message, exclude=("session",))))
        out.write("\n ]\n}\n")
    with _text_entry(archive, f"sessions/{session.pk}.md") as out:
        out.write(f"# {session.title or f'Session {session.pk}'}\n\n")
        out.write(f"Agent: {session.agent.name} (`{session.agent.slug}`) · started {session.created_at:%Y-%m-%d %H:%M} UTC"
                  f" · last activity {session.updated_at:%Y-%m-%d %H:%M} UTC\n")  # fmt: skip
        for message in _chunked(messages):
            out.write(f"\n## {message.role} · {message.created_at:%Y-%m-%d %H:%M:%S}")
            out.write(f" ({message.status})\n\n" if message.status != Message.Status.COMPLETE else "\n\n")
            out.write(_markdown_blocks(message.content))


def _markdown_blocks(blocks: Any) -> str:
    parts = []
    for block in blocks if isinstance(blocks, list) else []:
        if not isinstance(block, dict):
            continue
        kind = block.get("type")
        if kind == "text":
            parts.append(str(block.get("text", "")))
        elif kind == "thinking":
            parts.append("> (thinking) " + str(block.get("thinking", "")).replace("\n", "\n> "))
        elif kind == "tool_use":
            parts.append(f"Tool call `{block.get('name', '')}`:\n\n```json\n{_dumps(block.get('input', {}))}\n```")
        elif kind == "tool_result":
            content = block.get("content", "")
            if isinstance(content, list):
                content = "\n".join(str(c.get("text", "")) for c in content if isinstance(c, dict))
            parts.append(f"Tool result{' (error)' if block.get('is_error') else ''}:\n\n```\n{content}\n```")
    return "\n\n".join(parts) + "\n"


def _write_workspace(archive: zipfile.ZipFile, session_id: int) -> None:
    """The session's workspace files, regular files only: a symlink is never followed (a sandboxed
    command may have made one pointing anywhere), and files are opened without following one either."""
    root = workspace_path(session_id)
    if not root.is_dir():
        return
    for directory, subdirs, files in os.walk(root, followlinks=False):
        for name in sorted(files):
            path = os.path.join(directory, name)
            relative = os.path.relpath(path, root)
            try:
                fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
            except OSError:
                continue  # a symlink, or gone meanwhile
            with os.fdopen(fd, "rb") as source:
                if not stat.S_ISREG(os.fstat(source.fileno()).st_mode):
                    continue
                with archive.open(f"files/{session_id}/{relative}", "w", force_zip64=True) as target:
                    while chunk := source.read(_COPY_CHUNK):
                        target.write(chunk)
