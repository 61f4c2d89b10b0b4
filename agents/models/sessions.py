"""The sessions users hold with agents, and their messages."""

from __future__ import annotations

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models

from agents.validators import custom_properties_errors

from .agents import AIAgent


class UserAgentSession(models.Model):
    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="agent_sessions")
    # RESTRICT: a session's history only means something with its agent, and the assistant always
    # needs one (no null case). Agents are retired with is_active=False; deleting one that has
    # sessions is refused (409 in the API), unless its owner is deleted with all their sessions.
    agent = models.ForeignKey(AIAgent, on_delete=models.RESTRICT, related_name="sessions")
    title = models.CharField(max_length=255, blank=True)
    custom_properties = models.JSONField(default=dict, blank=True)
    is_active = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    # The version of its agent the session last ran with (set at creation and at each turn).
    agent_version = models.ForeignKey(
        "AIAgentVersion", on_delete=models.SET_NULL, null=True, blank=True, related_name="sessions"
    )

    class Meta:
        verbose_name = "user agent session"
        ordering = ["-updated_at", "-id"]
        indexes = [models.Index(fields=["owner", "-updated_at"], name="agents_sess_owner_upd_idx")]

    def __str__(self) -> str:
        return self.title or f"Session {self.pk}"

    def clean(self) -> None:
        """Custom properties must satisfy the agent's JSON schema (checked for the API and the admin)."""
        if not isinstance(self.custom_properties, dict):
            raise ValidationError({"custom_properties": ["Custom properties must be a JSON object."]})
        if self.agent_id is None:
            return
        errors = custom_properties_errors(schema=self.agent.custom_properties_schema, values=self.custom_properties)
        if errors:
            raise ValidationError({"custom_properties": errors})


class Message(models.Model):
    class Role(models.TextChoices):
        USER = "user", "User"
        ASSISTANT = "assistant", "Assistant"

    class Status(models.TextChoices):
        COMPLETE = "complete", "Complete"
        STREAMING = "streaming", "Streaming"
        STOPPED = "stopped", "Stopped"
        ERROR = "error", "Error"
        # Tool results waiting for the user's decisions (assistant.models.Approval): no runner, no
        # model connection; resumed by the last decision, on whichever process receives it.
        AWAITING_APPROVAL = "awaiting", "Awaiting approval"

    session = models.ForeignKey(UserAgentSession, on_delete=models.CASCADE, related_name="messages")
    seq = models.PositiveIntegerField(help_text="Per-session ordinal, from 1.")
    role = models.CharField(max_length=16, choices=Role.choices)
    content = models.JSONField(
        default=list, blank=True, help_text="Anthropic-style content blocks: text, tool_use, tool_result, thinking."
    )
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.COMPLETE)
    model = models.CharField(max_length=255, blank=True)
    stop_reason = models.CharField(max_length=64, blank=True)
    input_tokens = models.PositiveIntegerField(default=0)
    output_tokens = models.PositiveIntegerField(default=0)
    cache_read_input_tokens = models.PositiveIntegerField(default=0)
    cache_creation_input_tokens = models.PositiveIntegerField(default=0)
    error_code = models.CharField(max_length=64, blank=True)
    error_message = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    # The usage's price when it was stored (usage/prices.py); null: no price known.
    cost = models.DecimalField(max_digits=16, decimal_places=8, null=True, blank=True)

    class Meta:
        ordering = ["session", "seq"]
        constraints = [models.UniqueConstraint(fields=["session", "seq"], name="agents_message_session_seq_unique")]
        # The unique constraint's index serves (session, seq) lookups and "after seq N" ranges. Answers
        # still streaming are a handful among millions: every turn start counts the user's (the
        # concurrency limit) and the sweeps look for stale ones, through this partial index.
        indexes = [
            models.Index(
                fields=["status", "session"], condition=models.Q(status="streaming"), name="agents_message_streaming_idx"
            ),
            # The same for answers whose tools wait for approval: a session's next turn checks for one.
            models.Index(fields=["session"], condition=models.Q(status="awaiting"), name="agents_message_awaiting_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.session_id}#{self.seq} {self.role}"

    @property
    def text(self) -> str:
        """The concatenated text blocks."""
        return "".join(
            block.get("text", "") for block in self.content if isinstance(block, dict) and block.get("type") == "text"
        )
