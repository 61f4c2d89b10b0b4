"""Audit events that are not model changes (those are django-auditlog's LogEntry rows): failed logins
and the tools turns executed — what each call was asked (secrets masked), how it ended, a digest and a preview
of its result, and who allowed it. Append-only: written by audit.services, never changed or deleted."""

from __future__ import annotations

from django.conf import settings
from django.db import models


class AuditEventQuerySet(models.QuerySet):
    # Bulk paths skip save() and delete(): refused too, so "append-only" holds for the ORM's every path
    # (a deleted user's rows are still unlinked: the collector's SET_NULL doesn't go through here).
    def update(self, **kwargs):
        raise ValueError("Audit events are append-only.")

    def delete(self):
        raise ValueError("Audit events are append-only.")


class AuditEvent(models.Model):
    class Kind(models.TextChoices):
        LOGIN_FAILED = "login_failed", "Failed login"
        TOOL_CALL = "tool_call", "Tool call"
        USER_ERASED = "user_erased", "User erased"
        DATA_EXPORT = "data_export", "User data export (by staff)"

    class Outcome(models.TextChoices):
        OK = "ok", "OK"
        ERROR = "error", "Error"

    class Approval(models.TextChoices):
        ALLOW = "allow", "Allowed"
        DENY = "deny", "Denied"
        EXPIRED = "expired", "Expired (denied)"
        NOT_REQUIRED = "not_required", "Not required"

    kind = models.CharField(max_length=32, choices=Kind.choices)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    actor = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+")
    # Kept when the user is deleted, and for failed logins (the email tried: no user need exist).
    actor_email = models.CharField(max_length=254, blank=True)
    ip = models.GenericIPAddressField(null=True, blank=True)
    agent = models.CharField(max_length=100, blank=True, help_text="The agent's slug.")
    session_id = models.BigIntegerField(null=True, blank=True)
    tool = models.CharField(max_length=200, blank=True)
    outcome = models.CharField(max_length=16, choices=Outcome.choices, blank=True)
    source = models.CharField(max_length=32, blank=True, help_text="turn (websocket, SSE, API) or cli; api or admin.")
    # Tool calls: the call's input (null or blank on other kinds but user_erased and data_export: what was done).
    input = models.JSONField(null=True, blank=True, help_text="The call's input, secrets masked, at most 16 KB.")
    duration_ms = models.PositiveIntegerField(null=True, blank=True)
    result_digest = models.CharField(max_length=64, blank=True, help_text="SHA-256 of the whole result (UTF-8), hex.")
    result_preview = models.TextField(blank=True, help_text="The result's first 500 characters.")
    approval = models.CharField(max_length=16, choices=Approval.choices, blank=True)
    approved_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    approved_by_email = models.CharField(max_length=254, blank=True)  # kept when the user is deleted
    approved_at = models.DateTimeField(null=True, blank=True)
    approval_reason = models.TextField(blank=True)

    objects = AuditEventQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["kind", "-created_at"], name="audit_event_kind_created_idx")]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} {self.tool or self.actor_email} {self.created_at:%Y-%m-%d %H:%M:%S}"

    def save(self, *args, **kwargs) -> None:
        if self.pk is not None:
            raise ValueError("Audit events are append-only.")
        super().save(*args, **kwargs)

    def delete(self, *args, **kwargs):
        raise ValueError("Audit events are append-only.")
