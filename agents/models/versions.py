"""Agent versions: every state an agent has had."""

from __future__ import annotations

from django.conf import settings
from django.db import models

from .agents import AIAgent


class AIAgentVersion(models.Model):
    """One row per state an agent has had (written by agents/versions.py whenever an agent is saved,
    however: REST, admin, services): its fields, what changed, who changed it."""

    agent = models.ForeignKey(AIAgent, on_delete=models.CASCADE, related_name="versions")
    version = models.PositiveIntegerField()
    snapshot = models.JSONField(help_text="The agent's fields (integrations as ids) in this version.")
    changed_fields = models.JSONField(default=list, blank=True)
    note = models.CharField(max_length=255, blank=True)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        verbose_name = "AI agent version"
        ordering = ["agent", "-version"]
        constraints = [models.UniqueConstraint(fields=["agent", "version"], name="agents_agent_version_unique")]

    def __str__(self) -> str:
        return f"{self.agent} v{self.version}"
