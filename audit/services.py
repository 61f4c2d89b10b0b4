"""Writing audit events. Never given secrets: no passwords, no tool inputs or outputs."""

from __future__ import annotations

from rest_framework.throttling import BaseThrottle

from audit.models import AuditEvent


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


def tool_calls_record(*, session_id: int, calls: list[tuple[str, bool]], source: str) -> None:
    """One row per executed call: (tool name, is_error) — the outcome, not the output."""
    from agents.models import UserAgentSession

    session = UserAgentSession.objects.filter(pk=session_id).select_related("owner", "agent").first()
    if session is None:
        return
    AuditEvent.objects.bulk_create(
        AuditEvent(
            kind=AuditEvent.Kind.TOOL_CALL, actor=session.owner, actor_email=session.owner.email,
            agent=session.agent.slug, session_id=session_id, tool=name[:200],
            outcome=AuditEvent.Outcome.ERROR if is_error else AuditEvent.Outcome.OK, source=source,
        )
        for name, is_error in calls
    )  # fmt: skip
