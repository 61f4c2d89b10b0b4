"""Audit events that are not model changes (those are django-auditlog's LogEntry rows): failed logins
and the tools turns executed. Append-only: written by audit.services, never changed or deleted."""

from __future__ import annotations

from django.conf import settings
from django.db import models


class AuditEvent(models.Model):
    class Kind(models.TextChoices):
        LOGIN_FAILED = "login_failed", "Failed login"
        TOOL_CALL = "tool_call", "Tool call"

    class Outcome(models.TextChoices):
        OK = "ok", "OK"
        ERROR = "error", "Error"

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
