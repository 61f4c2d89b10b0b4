from __future__ import annotations

from django.conf import settings
from django.db import models


class ClientSession(models.Model):
    """A Claire client session created through this server, and whose it is.

    Claire knows only the opaque user id we send; this record is what lets the server refuse,
    before any upstream call, to renew, delete or show a session to anyone but its owner."""

    session_id = models.CharField(max_length=64, unique=True)
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="claire_sessions")
    # The user id Claire saw (see orgproxy.selectors.claire_user_id), kept for support and audits.
    upstream_user_id = models.CharField(max_length=255)
    bot_id = models.CharField(max_length=64, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["user", "-created_at"], name="orgproxy_cs_user_created")]

    def __str__(self) -> str:
        return self.session_id
