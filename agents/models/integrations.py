"""Integrations: the MCP servers agents use, with their credentials."""

from __future__ import annotations

from django.core.exceptions import ValidationError
from django.db import models
from django.db.models import Q

from agents.fields import EncryptedJSONField, EncryptedTextField
from agents.validators import validate_mcp_server

from .common import _check_users_url, _owner_field


class Integration(models.Model):
    class Provider(models.TextChoices):
        GITHUB = "github", "GitHub"
        GITLAB = "gitlab", "GitLab"
        ATLASSIAN = "atlassian", "Atlassian (Jira, Confluence)"
        NOTION = "notion", "Notion"
        SLACK = "slack", "Slack"
        LINEAR = "linear", "Linear"
        GOOGLE = "google", "Google Workspace"
        CUSTOM = "custom", "Custom"

    class AuthType(models.TextChoices):
        OAUTH = "oauth", "OAuth"
        API_KEY = "api_key", "API key"
        PAT = "pat", "Personal access token"

    name = models.CharField(max_length=100, blank=True, help_text="Also the MCP server's name. Empty: the provider.")
    provider = models.CharField(max_length=32, choices=Provider.choices)
    auth_type = models.CharField(max_length=16, choices=AuthType.choices, default=AuthType.API_KEY)
    credentials = EncryptedJSONField(
        null=True, blank=True, help_text="Encrypted at rest: a token string or an object of credentials."
    )
    mcp_server = models.JSONField(
        null=True,
        blank=True,
        validators=[validate_mcp_server],
        help_text='stdio: {"command", "args": [], "env": {}}; or {"type": "sse"|"http", "url", "headers": {}}.',
    )
    # Whose identity the server sees (issue 29; connections/ holds each user's tokens).
    auth = models.CharField(
        max_length=16,
        choices=[
            ("shared", "Shared: the integration's credentials for every user"),
            ("per_user_token", "Per user token: each user gives their own token"),
            ("oauth", "OAuth: each user connects through the server's authorization server"),
        ],
        default="shared",
        help_text="Shared: `credentials` for everyone. Per user token / OAuth: each user's own connection "
        "(an sse or http server only; `credentials` are never sent).",
    )
    oauth_client_id = models.CharField(
        max_length=255, blank=True,
        help_text="OAuth: a client registered at the authorization server for this site. Empty: registered "
        "dynamically (RFC 7591) when the server offers it.",
    )  # fmt: skip
    oauth_client_secret = EncryptedTextField(blank=True, help_text="Encrypted at rest. Empty: a public client.")
    oauth_scopes = models.CharField(
        max_length=1000, blank=True, help_text="OAuth: space-separated scopes to ask for. Empty: the server's."
    )
    # Staff's rule for an organization-wide integration: every call of its tools waits for the user's
    # yes (issue 28). An agent's own `approval_required` adds to it, never takes from it.
    tools_require_approval = models.BooleanField(
        default=False,
        help_text="Organization-wide integrations: every call of this integration's tools waits for the user to "
        "allow it, whatever the agent says.",
    )
    is_active = models.BooleanField(default=True)
    owner = _owner_field("integrations")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["provider", "id"]
        constraints = [
            models.UniqueConstraint(
                fields=["owner", "provider"],
                condition=Q(is_active=True, owner__isnull=False),
                name="agents_integration_one_active_per_owner_provider",
                violation_error_message="An active integration for this provider already exists.",
            ),
            models.UniqueConstraint(
                fields=["provider"],
                condition=Q(is_active=True, owner__isnull=True),
                name="agents_integration_one_active_org_provider",
                violation_error_message="An active organization-wide integration for this provider already exists.",
            ),
        ]

    def __str__(self) -> str:
        return self.server_name

    @property
    def server_name(self) -> str:
        return self.name or self.provider

    @property
    def runs_a_local_command(self) -> bool:
        server = self.mcp_server or {}
        return isinstance(server, dict) and server.get("type", "stdio" if "command" in server else None) == "stdio"

    @property
    def per_user(self) -> bool:
        """Each user reaches its server with their own connection (connections app)."""
        return self.auth in {"per_user_token", "oauth"}

    def clean(self) -> None:
        if self.per_user and (not isinstance(self.mcp_server, dict) or self.runs_a_local_command
                              or not isinstance(self.mcp_server.get("url"), str)):
            raise ValidationError({"auth": ["Per-user tokens and OAuth need an sse or http MCP server (a url)."]})
        # Trust rule: staff decide what the server executes. A stdio server is a command run on the server.
        if self.owner_id is None or not isinstance(self.mcp_server, dict) or not self.mcp_server:
            return
        if self.runs_a_local_command:
            raise ValidationError(
                {"mcp_server": ["Only staff can define stdio MCP servers (commands run on the server), in "
                                "organization-wide integrations; use an sse or http server."]}
            )
        if isinstance(self.mcp_server.get("url"), str):
            _check_users_url(self.mcp_server["url"], field="mcp_server")
