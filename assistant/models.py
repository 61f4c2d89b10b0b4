from __future__ import annotations

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
    """The code-assistance endpoint's own session ids (`claude-session-…`, chosen by clients) mapped
    to the sessions that hold those conversations, per user."""

    owner = models.ForeignKey("accounts.User", on_delete=models.CASCADE, related_name="+")
    key = models.CharField(max_length=100)
    session = models.OneToOneField("agents.UserAgentSession", on_delete=models.CASCADE, related_name="client_alias")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["owner", "key"], name="assistant_clientsessionalias_owner_key_unique")]

    def __str__(self) -> str:
        return self.key
