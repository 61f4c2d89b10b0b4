"""Writing audit events. Never given passwords; tool inputs are stored with their secrets masked
(`mask_secrets`) and bounded, tool results only as a digest and a short preview."""

from __future__ import annotations

import hashlib
import json
import math
import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from rest_framework.throttling import BaseThrottle

from audit.models import AuditEvent

MASK = "***"
INPUT_MAX_BYTES = 16 * 1024
RESULT_PREVIEW_CHARS = 500
APPROVAL_REASON_MAX_CHARS = 2000

# Parts that mark a secret wherever they appear in a key ("X-Auth-Token", "db_password", "clientSecret",
# "Set-Cookie", "aws_credentials"). Matching loosely masks a harmless "max_tokens" too: cheaper than a leak.
_SECRET_PARTS = ("token", "passw", "passphrase", "secret", "authoriz", "cookie", "credential")
# Secrets only as a whole word of the name: "auth" but not "author".
_SECRET_WORDS = {"pwd", "auth", "bearer", "signature"}
# Secrets in values whatever their key: bearer/basic credentials (an Authorization header inside a
# shell command), Conduit's own API keys, provider keys shaped "sk-…".
_SECRET_VALUES = re.compile(
    r"(?i)\b(bearer|basic)\s+[a-z0-9._~+/=-]{8,}|\bcdk_[A-Za-z0-9_-]{16,}|\bsk-[A-Za-z0-9_-]{16,}"
)


def _is_secret_key(name: str) -> bool:
    lowered = name.lower()
    if any(part in lowered for part in _SECRET_PARTS):
        return True
    # Words of the name: snake, kebab, dotted and camelCase ("apiKey" → api, key).
    words = re.split(r"[^a-z0-9]+", re.sub(r"([a-z0-9])([A-Z])", r"\1_\2", name).lower())
    # A word ending in "key" is one ("key", "apikey", "privatekey", "sshkey"); "keyword" and "keys" aren't.
    return any(w in _SECRET_WORDS or w.endswith("key") for w in words)


def _mask_value_text(text: str) -> str:
    return _SECRET_VALUES.sub(lambda m: f"{m.group(1)} {MASK}" if m.group(1) else MASK, text)


def mask_secrets(value: Any) -> Any:
    """A copy of `value` with whatever sits under a secret-looking key replaced by "***" (in nested
    dicts and lists; keys compared case-insensitively), and credential-shaped text in strings masked."""
    if isinstance(value, dict):
        return {k: MASK if _is_secret_key(str(k)) else mask_secrets(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [mask_secrets(item) for item in value]
    if isinstance(value, str):
        return _mask_value_text(value)
    return value


def _storable_text(text: str) -> str:
    # PostgreSQL refuses NUL in text and JSON, and lone surrogates anywhere: a tool's bytes must not
    # make its audit row (and with it the turn) fail.
    return text.replace("\x00", "\ufffd").encode("utf-8", "replace").decode("utf-8")


def _storable(value: Any) -> Any:
    if isinstance(value, dict):
        return {_storable_text(str(k)): _storable(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_storable(item) for item in value]
    if isinstance(value, str):
        return _storable_text(value)
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)  # JSON has no NaN nor Infinity (PostgreSQL refuses them)
    if value is None or isinstance(value, (bool, int, float)):
        return value
    return _storable_text(str(value))


def bounded_input(value: Any) -> Any:
    """The masked input as stored: itself when its JSON fits INPUT_MAX_BYTES, else a marker object
    holding the JSON text's beginning (`{"truncated": true, "bytes": <whole size>, "head": "…"}`)."""
    value = _storable(mask_secrets(value))
    text = json.dumps(value)  # ASCII (escaped): characters are bytes, as Django's JSONField writes it
    if len(text) <= INPUT_MAX_BYTES:
        return value
    head = text[:INPUT_MAX_BYTES]
    while True:  # the head's quotes and backslashes are escaped again inside the marker: shrink to fit
        marker = {"truncated": True, "bytes": len(text), "head": head}
        excess = len(json.dumps(marker)) - INPUT_MAX_BYTES
        if excess <= 0:
            return marker
        head = head[: len(head) - max(excess, 1)]


@dataclass(frozen=True)
class ToolApproval:
    decision: str  # "allow" | "deny" | "expired"
    decided_by_id: int | None
    decided_by_email: str
    decided_at: datetime | None
    reason: str = ""


@dataclass(frozen=True)
class ToolCallRecord:
    name: str
    input: dict
    is_error: bool
    duration_ms: int | None = None
    result: str = ""
    approval: ToolApproval | None = None  # None: the call needed no approval


_DECISIONS = {AuditEvent.Approval.ALLOW, AuditEvent.Approval.DENY, AuditEvent.Approval.EXPIRED}


def client_ip(request) -> str | None:
    """The client's address as the throttles see it (REMOTE_ADDR, or X-Forwarded-For behind
    NUM_PROXIES proxies): a header a client sets itself is not trusted otherwise."""
    if request is None or not hasattr(request, "META"):
        return None
    return BaseThrottle().get_ident(request) or None


def login_failure_record(*, request, email: str) -> None:
    AuditEvent.objects.create(
        kind=AuditEvent.Kind.LOGIN_FAILED, actor_email=(email or "")[:254], ip=client_ip(request),
        source="admin" if getattr(request, "path", "").startswith("/admin/") else "api",
    )  # fmt: skip


def data_export_record(*, request, user_id: int, export_id: str, step: str) -> None:
    """Staff started (`step` "started") or downloaded ("downloaded") an export of another user's data."""
    AuditEvent.objects.create(
        kind=AuditEvent.Kind.DATA_EXPORT, actor=request.user, actor_email=request.user.email, ip=client_ip(request),
        source="admin", input={"user_id": user_id, "export_id": export_id, "step": step}, outcome=AuditEvent.Outcome.OK,
    )  # fmt: skip


def tool_calls_record(*, session_id: int, calls: list[ToolCallRecord], source: str) -> None:
    """One row per call the model made in the session: its input (masked, bounded), outcome, duration,
    the result's digest and preview, and the approval. One query for the session, one insert."""
    if not calls:
        return
    for call in calls:
        if call.approval is not None and call.approval.decision not in _DECISIONS:
            raise ValueError(f"Unknown approval decision {call.approval.decision!r}.")
    from agents.models import UserAgentSession

    session = UserAgentSession.objects.filter(pk=session_id).select_related("owner", "agent").first()
    if session is None:
        return
    # Only the owner decides today (and exists while the session does); anyone else is linked only if
    # they still exist, as a dangling id would fail the insert. Their email is kept either way.
    known_users = {session.owner_id}
    others = {c.approval.decided_by_id for c in calls if c.approval is not None} - known_users - {None}
    if others:
        from django.contrib.auth import get_user_model

        known_users |= set(get_user_model().objects.filter(pk__in=others).values_list("pk", flat=True))
    AuditEvent.objects.bulk_create(_tool_call_event(session, call, source, known_users) for call in calls)


def _tool_call_event(session, call: ToolCallRecord, source: str, known_users: set[int]) -> AuditEvent:
    result = call.result if isinstance(call.result, str) else json.dumps(call.result, default=str)
    approval = call.approval
    return AuditEvent(
        kind=AuditEvent.Kind.TOOL_CALL, actor=session.owner, actor_email=session.owner.email,
        agent=session.agent.slug, session_id=session.pk, tool=call.name[:200],
        outcome=AuditEvent.Outcome.ERROR if call.is_error else AuditEvent.Outcome.OK, source=source,
        input=bounded_input(call.input),
        duration_ms=max(call.duration_ms, 0) if call.duration_ms is not None else None,
        result_digest=hashlib.sha256(result.encode("utf-8", "surrogatepass")).hexdigest(),
        # Masked whole, then cut: a credential across the cut would otherwise show its beginning.
        result_preview=_storable_text(_mask_value_text(result)[:RESULT_PREVIEW_CHARS]),
        approval=approval.decision if approval else AuditEvent.Approval.NOT_REQUIRED,
        approved_by_id=approval.decided_by_id if approval and approval.decided_by_id in known_users else None,
        approved_by_email=(approval.decided_by_email or "")[:254] if approval else "",
        approved_at=approval.decided_at if approval else None,
        approval_reason=_storable_text((approval.reason or "")[:APPROVAL_REASON_MAX_CHARS]) if approval else "",
    )  # fmt: skip
