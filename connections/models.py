"""A user's connection to an integration (their own tokens), the OAuth clients this site registered
at authorization servers, and authorizations in progress (kept here, not in a process: the callback
may reach any replica)."""

from __future__ import annotations

from django.conf import settings
from django.db import models

from agents.fields import EncryptedTextField
from agents.models import Integration


class OAuthClient(models.Model):
    """This site as a client of one authorization server, for one integration and callback URL:
    registered dynamically (RFC 7591) or the id staff entered; with the endpoints last discovered."""

    integration = models.ForeignKey(Integration, on_delete=models.CASCADE, related_name="oauth_clients")
    issuer = models.URLField(max_length=1000)
    redirect_uri = models.URLField(max_length=1000)
    client_id = models.CharField(max_length=1000)
    client_secret = EncryptedTextField(blank=True)
    token_endpoint_auth_method = models.CharField(max_length=40, default="none")
    registered = models.BooleanField(default=False, help_text="Registered dynamically (RFC 7591) by this site.")
    authorization_endpoint = models.URLField(max_length=1000)
    token_endpoint = models.URLField(max_length=1000)
    revocation_endpoint = models.URLField(max_length=1000, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name = "OAuth client"
        constraints = [
            models.UniqueConstraint(
                fields=["integration", "issuer", "redirect_uri"], name="connections_oauthclient_unique"
            )
        ]

    def __str__(self) -> str:
        return f"{self.integration} at {self.issuer}"


class Connection(models.Model):
    class Status(models.TextChoices):
        CONNECTED = "connected", "Connected"
        NEEDS_RECONNECT = "needs_reconnect", "Needs reconnecting"

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="connections")
    integration = models.ForeignKey(Integration, on_delete=models.CASCADE, related_name="connections")
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.CONNECTED)
    access_token = EncryptedTextField()
    refresh_token = EncryptedTextField(blank=True)
    scopes = models.CharField(max_length=1000, blank=True)
    expires_at = models.DateTimeField(null=True, blank=True, help_text="Empty: not known to expire.")
    # OAuth: where its tokens are refreshed and revoked, and the resource they were issued for.
    client = models.ForeignKey(OAuthClient, on_delete=models.SET_NULL, null=True, blank=True, related_name="+")
    resource = models.URLField(max_length=1000, blank=True)
    connected_at = models.DateTimeField()
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-connected_at", "-id"]
        constraints = [models.UniqueConstraint(fields=["user", "integration"], name="connections_one_per_user")]

    def __str__(self) -> str:
        return f"{self.user} → {self.integration}"


class OAuthState(models.Model):
    """An authorization in progress: used once, by its callback, within CONNECTIONS_STATE_TTL.
    Only a hash of `state` is stored (it is a bearer of the authorization until the callback)."""

    state_hash = models.CharField(max_length=64, unique=True)
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    integration = models.ForeignKey(Integration, on_delete=models.CASCADE, related_name="+")
    client = models.ForeignKey(OAuthClient, on_delete=models.CASCADE, related_name="+")
    code_verifier = EncryptedTextField()
    resource = models.URLField(max_length=1000)
    scopes = models.CharField(max_length=1000, blank=True)
    created_at = models.DateTimeField(db_index=True)

    class Meta:
        verbose_name = "OAuth authorization in progress"

    def __str__(self) -> str:
        return f"{self.user} → {self.integration} ({self.created_at:%Y-%m-%d %H:%M})"
