from __future__ import annotations

import uuid

from django.db import models


class TurnEvent(models.Model):
    """One event of a session's turns, in the order clients receive it.

    Written before it is published, so a client that (re)connects anywhere can read what it missed
    from here and take the rest live: no gap, no duplicate. Text deltas are coalesced (a few per
    second per stream), so a turn is tens of rows, not one per token.
    """

    session = models.ForeignKey("agents.UserAgentSession", on_delete=models.CASCADE, related_name="events")
    seq = models.PositiveBigIntegerField()
    type = models.CharField(max_length=32)
    data = models.JSONField(default=dict)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["session", "seq"]
        constraints = [models.UniqueConstraint(fields=["session", "seq"], name="assistant_turnevent_session_seq_unique")]

    def __str__(self) -> str:
        return f"{self.session_id}#{self.seq} {self.type}"

    def as_frame(self) -> dict:
        return {"type": self.type, "session_id": self.session_id, "seq": self.seq, **self.data}


class ClientSessionAlias(models.Model):
    """A conversation id chosen by a client, mapped to the session that holds the conversation, per
    user; one alias per session. `kind` keeps the surfaces' ids apart:
    - `code_assistance`: the code-assistance endpoint's session ids (`claude-session-…`);
    - `ui_chat`: an AI SDK chat's `id` (useChat) on the run API, `<agent id>:<chat id>`;
    - `v1_conversation`: the digest of a `/v1` conversation as its client has it after the session's
      last turn (assistant/surfaces/openai/format.py `conversation_digest`), so that a request
      carrying that conversation continues the session; moved on at the end of each `/v1` turn."""

    class Kind(models.TextChoices):
        CODE_ASSISTANCE = "code_assistance", "Code assistance session id"
        UI_CHAT = "ui_chat", "AI SDK chat id"
        V1_CONVERSATION = "v1_conversation", "/v1 conversation digest"

    owner = models.ForeignKey("accounts.User", on_delete=models.CASCADE, related_name="+")
    kind = models.CharField(max_length=16, choices=Kind.choices, default=Kind.CODE_ASSISTANCE)
    key = models.CharField(max_length=200)
    session = models.OneToOneField("agents.UserAgentSession", on_delete=models.CASCADE, related_name="client_alias")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["owner", "kind", "key"], name="assistant_clientsessionalias_owner_kind_key")
        ]

    def __str__(self) -> str:
        return f"{self.kind}: {self.key}"


class StoredResponse(models.Model):
    """A `/v1/responses` answer (assistant/surfaces/openai/responses.py), kept for
    `GET /v1/responses/{id}` and for a later request's `previous_response_id`, which continues its
    session. Not kept for a request with `store: false` (its turn is still stored in the session)."""

    id = models.CharField(primary_key=True, max_length=64)  # resp_…
    owner = models.ForeignKey("accounts.User", on_delete=models.CASCADE, related_name="+")
    session = models.ForeignKey("agents.UserAgentSession", on_delete=models.CASCADE, related_name="+")
    # The turn's answer: a response whose message is no longer the session's last was continued since.
    message = models.ForeignKey("agents.Message", on_delete=models.SET_NULL, null=True, blank=True, related_name="+")
    body = models.JSONField(default=dict)  # the Response object as answered
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return self.id


class Approval(models.Model):
    """A tool call that waits for its user's decision before it runs (issue 28).

    Made when the model asks for a tool its agent's policy holds (agents.AIAgent.approval_required,
    Integration.tools_require_approval); the turn stops there, its tool results message
    `awaiting`. The session's owner allows or denies it once (a second decision is refused); the last
    decision of a message resumes the turn on whichever process receives it. Past `expires_at` it
    is denied as expired by the sweeps."""

    class Status(models.TextChoices):
        PENDING = "pending", "Pending"
        ALLOWED = "allowed", "Allowed"
        DENIED = "denied", "Denied"
        EXPIRED = "expired", "Expired"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    session = models.ForeignKey("agents.UserAgentSession", on_delete=models.CASCADE, related_name="approvals")
    # The tool results message the decision completes (`awaiting` until the last decision).
    message = models.ForeignKey("agents.Message", on_delete=models.CASCADE, related_name="approvals")
    tool_use_id = models.CharField(max_length=200)
    name = models.CharField(max_length=200)
    input = models.JSONField(default=dict, blank=True)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PENDING)
    reason = models.TextField(blank=True)
    decided_by = models.ForeignKey(
        "accounts.User", on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    decided_at = models.DateTimeField(null=True, blank=True)
    expires_at = models.DateTimeField()
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["created_at", "tool_use_id"]
        constraints = [
            models.UniqueConstraint(fields=["message", "tool_use_id"], name="assistant_approval_message_call_unique")
        ]
        # Pending ones are few among many decided: the list of a user's and the expiry sweep use this.
        indexes = [
            models.Index(
                fields=["status", "expires_at"], condition=models.Q(status="pending"), name="assistant_approval_pending_idx"
            )
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.get_status_display()})"
