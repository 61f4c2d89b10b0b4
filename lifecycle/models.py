"""An export of a user's data, and the clock that makes one serving process of all purge each day."""

from __future__ import annotations

import uuid

from django.conf import settings
from django.db import models


class Export(models.Model):
    """A zip of everything a user left behind (lifecycle.export), built off the request thread into
    EXPORTS_DIR and deleted (file and row) at `expires_at`."""

    class State(models.TextChoices):
        PENDING = "pending", "Pending"
        RUNNING = "running", "Being built"
        READY = "ready", "Ready"
        FAILED = "failed", "Failed"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    # Staff who asked for it in the admin; empty when the user did.
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    state = models.CharField(max_length=16, choices=State.choices, default=State.PENDING)
    file_name = models.CharField(max_length=255, blank=True, help_text="Under EXPORTS_DIR.")
    size = models.PositiveBigIntegerField(default=0)
    error = models.CharField(max_length=255, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    expires_at = models.DateTimeField()

    class Meta:
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["user", "-created_at"], name="lifecycle_export_user_idx")]

    def __str__(self) -> str:
        return f"Export {self.id} ({self.get_state_display()})"


class PurgeClock(models.Model):
    """One row: when a serving process last claimed the daily purge (a conditional UPDATE, so of
    several replicas exactly one runs it)."""

    ROW = 1

    last_run = models.DateTimeField(null=True, blank=True)

    class Meta:
        verbose_name = "purge clock"

    def __str__(self) -> str:
        return f"purge last run {self.last_run}"
