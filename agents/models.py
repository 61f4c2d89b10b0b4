"""The agent platform's domain: LLM configs, integrations, the prompt library, agents, and the
sessions users hold with agents with their messages.

Ownership: `owner` null means organization-wide (managed by staff in admin); a user sees their own
objects plus organization-wide ones (plus prompts other users shared with `visibility=organization`)
and changes only their own. Sessions and messages are strictly their owner's.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.db.models import Q

from agents.fields import EncryptedJSONField, EncryptedTextField
from config import egress
from agents.validators import (
    custom_properties_errors,
    validate_json_schema,
    validate_mcp_server,
    validate_tags,
    validate_tool_names,
)

# `{{ name }}`, or `{{ name | default: "text" }}` (single quotes too): the text stands in when no value is given.
VARIABLE_RE = re.compile(
    r"""\{\{\s*([A-Za-z_][A-Za-z0-9_]*)\s*(?:\|\s*default\s*:\s*(?:"([^"]*)"|'([^']*)')\s*)?\}\}"""
)


@dataclass(frozen=True)
class PromptVariable:
    name: str
    default: str | None  # None: a value must be given

    @property
    def required(self) -> bool:
        return self.default is None


def prompt_variables(body: str) -> list[PromptVariable]:
    """The placeholders of `body` in order of first appearance; a default given at any of a name's
    placeholders is its default."""
    defaults: dict[str, str | None] = {}
    for match in VARIABLE_RE.finditer(body or ""):
        name, double_quoted, single_quoted = match.groups()
        default = double_quoted if double_quoted is not None else single_quoted
        if defaults.get(name) is None:
            defaults[name] = default
    return [PromptVariable(name, default) for name, default in defaults.items()]


def _check_users_url(url: str, *, field: str) -> None:
    """A URL an ordinary user chose passes the egress policy (checked again at connect time)."""
    try:
        egress.check_url(url)
    except egress.EgressRefused as refused:
        raise ValidationError({field: [f"{refused} Ask staff to list the host in OUTBOUND_ALLOWED_HOSTS if it is "
                                       "meant to be reachable."]}) from None


def _owner_field(related_name: str) -> models.ForeignKey:
    return models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.CASCADE,
        null=True,
        blank=True,
        related_name=related_name,
        help_text="Empty: organization-wide (visible to every user, managed by staff).",
    )


class LLMProviderConfig(models.Model):
    class Provider(models.TextChoices):
        # Only providers the assistant can actually call (one adapter each in assistant/llm/).
        ANTHROPIC = "anthropic", "Anthropic (Messages API)"
        OPENAI = "openai", "OpenAI or OpenAI-compatible (Chat Completions: Azure OpenAI, Ollama, vLLM, LM Studio …)"

    name = models.CharField(max_length=255)
    provider = models.CharField(
        max_length=32,
        choices=Provider.choices,
        default=Provider.ANTHROPIC,
        help_text="The API the model speaks. “openai” is any Chat Completions endpoint: OpenAI itself, or a "
        "compatible server named by the base URL.",
    )
    model = models.CharField(
        max_length=255,
        blank=True,
        help_text="The provider's model name (claude-sonnet-4-5, gpt-4.1-mini, llama3.1:8b …). Empty: "
        "ANTHROPIC_MODEL or OPENAI_MODEL from the settings, by provider.",
    )
    base_url = models.URLField(
        blank=True,
        help_text="Empty: the provider's endpoint set by staff (ANTHROPIC_BASE_URL / OPENAI_BASE_URL), else its "
        "public one. For OpenAI-compatible servers the URL up to /v1 (http://ollama:11434/v1). A user's own "
        "base URL needs the user's own API key.",
    )
    api_key = EncryptedTextField(
        blank=True,
        help_text="Encrypted at rest. Empty: ANTHROPIC_API_KEY or OPENAI_API_KEY from the settings, by provider "
        "(never sent to a user's own base URL). Servers without keys take any placeholder.",
    )
    max_tokens = models.PositiveIntegerField(
        default=4096,
        validators=[MinValueValidator(1), MaxValueValidator(200_000)],
        help_text="Longest answer per model call (OpenAI: max_completion_tokens; compatible servers: max_tokens).",
    )
    temperature = models.FloatField(
        default=1.0,
        validators=[MinValueValidator(0.0), MaxValueValidator(2.0)],
        help_text="OpenAI-compatible providers only (0–2; 1 is their default and is not sent, as reasoning "
        "models take no other). Not sent to Anthropic: the API version Conduit speaks refuses it.",
    )
    is_default = models.BooleanField(
        default=False, help_text="Used by agents without a config of their own (one default per owner)."
    )
    owner = _owner_field("llm_configs")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    # Prices in the organization's currency per million tokens; empty: calls of this config cost nothing
    # that is known (their tokens still count against token budgets). See usage/prices.py.
    price_input_per_mtok = models.DecimalField(max_digits=12, decimal_places=6, null=True, blank=True,
                                               validators=[MinValueValidator(0)])
    price_output_per_mtok = models.DecimalField(max_digits=12, decimal_places=6, null=True, blank=True,
                                                validators=[MinValueValidator(0)])
    price_cache_read_per_mtok = models.DecimalField(max_digits=12, decimal_places=6, null=True, blank=True,
                                                    validators=[MinValueValidator(0)])
    price_cache_write_per_mtok = models.DecimalField(max_digits=12, decimal_places=6, null=True, blank=True,
                                                     validators=[MinValueValidator(0)])
    # `POST /v1/embeddings` (assistant/surfaces/openai/embeddings.py) goes through configs marked so.
    for_embeddings = models.BooleanField(
        default=False,
        help_text="Serves POST /v1/embeddings for its embeddings model (provider “openai” only): the organization's "
        "configs for everyone, a user's own for that user.",
    )
    embeddings_model = models.CharField(
        max_length=255,
        blank=True,
        help_text="The provider's embeddings model (text-embedding-3-small …): the `model` clients of "
        "/v1/embeddings ask for. Required when the config serves embeddings.",
    )

    class Meta:
        verbose_name = "LLM provider config"
        ordering = ["name", "id"]
        constraints = [
            models.UniqueConstraint(
                fields=["owner"],
                condition=Q(is_default=True, owner__isnull=False),
                name="agents_llmconfig_one_default_per_owner",
                violation_error_message="This owner already has a default LLM config.",
            ),
            # NULLs are distinct in unique indexes: the organization-wide default needs its own.
            models.UniqueConstraint(
                fields=["is_default"],
                condition=Q(is_default=True, owner__isnull=True),
                name="agents_llmconfig_one_org_default",
                violation_error_message="There already is an organization-wide default LLM config.",
            ),
        ]

    def __str__(self) -> str:
        return self.name

    def clean(self) -> None:
        if self.for_embeddings and self.provider != self.Provider.OPENAI:
            raise ValidationError({"for_embeddings": ["Only a config with provider “openai” can serve embeddings."]})
        if self.for_embeddings and not self.embeddings_model.strip():
            raise ValidationError({"embeddings_model": ["A config that serves embeddings needs its embeddings model."]})
        # Trust rule: the organization's key (ANTHROPIC_API_KEY, OPENAI_API_KEY) goes only to the organization's
        # endpoint, so a user's config that names its own endpoint must bring its own key.
        if self.owner_id is None or not self.base_url:
            return
        if not self.api_key:
            raise ValidationError(
                {"api_key": ["A config with its own base URL needs its own API key (the organization's key is "
                             "only sent to the organization's endpoint)."]}
            )
        _check_users_url(self.base_url, field="base_url")


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


class PromptTemplate(models.Model):
    class Visibility(models.TextChoices):
        PRIVATE = "private", "Private (owner only)"
        ORGANIZATION = "organization", "Organization (every user can read and use it)"

    name = models.CharField(max_length=255)
    slug = models.SlugField(max_length=100)
    description = models.TextField(blank=True)
    body = models.TextField(help_text="The prompt text; {{ variable }} placeholders are filled in when rendering.")
    tags = models.JSONField(default=list, blank=True, validators=[validate_tags])
    visibility = models.CharField(max_length=16, choices=Visibility.choices, default=Visibility.PRIVATE)
    version = models.PositiveIntegerField(default=1, editable=False)
    owner = _owner_field("prompt_templates")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name", "id"]
        constraints = [
            models.UniqueConstraint(
                fields=["owner", "slug"],
                condition=Q(owner__isnull=False),
                name="agents_prompt_slug_unique_per_owner",
                violation_error_message="You already have a prompt with this slug.",
            ),
            models.UniqueConstraint(
                fields=["slug"],
                condition=Q(owner__isnull=True),
                name="agents_prompt_slug_unique_org",
                violation_error_message="An organization-wide prompt with this slug already exists.",
            ),
        ]

    def __str__(self) -> str:
        return self.name

    @property
    def is_shared(self) -> bool:
        """Readable by users other than its owner: an organization prompt, or one its owner shared."""
        return self.owner_id is None or self.visibility == self.Visibility.ORGANIZATION

    @property
    def variables(self) -> list[str]:
        """The placeholder names in the body, in order of first appearance."""
        return [variable.name for variable in prompt_variables(self.body)]


class PromptTemplateVersion(models.Model):
    """One row per body a template has had, the current one included (written by services.prompt_save)."""

    template = models.ForeignKey(PromptTemplate, on_delete=models.CASCADE, related_name="versions")
    version = models.PositiveIntegerField()
    body = models.TextField()
    shared = models.BooleanField(
        default=False,
        help_text="Users other than the owner see this version: it was the prompt's body while the prompt was "
        "shared (bodies written while it was private stay the owner's, even after it is shared).",
    )
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["template", "-version"]
        constraints = [
            models.UniqueConstraint(fields=["template", "version"], name="agents_prompt_version_unique"),
        ]

    def __str__(self) -> str:
        return f"{self.template} v{self.version}"


def _forget_deleted_prompt(collector, field, sub_objs, using) -> None:
    """on_delete of an agent's system prompt: the agent keeps no dangling reference and is marked, so
    it refuses turns (naming what is missing) instead of silently running without its prompt.
    (`services.prompt_delete` puts the prompt's name there first; this covers cascades, e.g. deleting
    the prompt's owner.)"""
    collector.add_field_update(field, None, sub_objs)
    lost = [agent for agent in sub_objs if not agent.system_prompt_lost]
    if lost:
        collector.add_field_update(AIAgent._meta.get_field("system_prompt_lost"), "(deleted)", lost)


class AIAgent(models.Model):
    class WorkspaceTools(models.TextChoices):
        NONE = "none", "None"
        FILES = "files", "File tools"
        FILES_AND_SHELL = "files_and_shell", "File tools and a sandboxed shell"

    name = models.CharField(max_length=255)
    slug = models.SlugField(max_length=100, help_text="Unique per owner; users can't take an organization agent's.")
    description = models.TextField(blank=True)
    category = models.CharField(max_length=100, blank=True, help_text="The module or area it serves.")
    tags = models.JSONField(default=list, blank=True, validators=[validate_tags])
    # A prompt's owner may always delete it (services.prompt_delete refuses only while their own agents
    # use it); other users' agents then refuse turns, naming the prompt (see _forget_deleted_prompt).
    system_prompt = models.ForeignKey(
        PromptTemplate,
        on_delete=_forget_deleted_prompt,
        null=True,
        blank=True,
        related_name="agents",
        help_text="A prompt from the library, or give the text inline below (not both).",
    )
    system_prompt_lost = models.CharField(
        max_length=255,
        blank=True,
        editable=False,
        help_text="The library prompt this agent used until its owner deleted it: the agent refuses turns "
        "until it is given a system prompt again.",
    )
    system_prompt_text = models.TextField(blank=True, help_text="Inline system prompt, when no template is chosen.")
    llm_config = models.ForeignKey(
        LLMProviderConfig,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="agents",
        help_text="Empty: the default config.",
    )
    allowed_tools = models.JSONField(default=list, blank=True, validators=[validate_tool_names])
    approval_required = models.JSONField(
        default=list,
        blank=True,
        validators=[validate_tool_names],
        help_text="Tools whose calls wait for the user to allow them: names and patterns as in allowed tools "
        '(e.g. "write_file", "github__create_*"); "*" for all.',
    )
    integrations = models.ManyToManyField(
        Integration, blank=True, related_name="agents", help_text="Used as the agent's MCP servers."
    )
    max_turns = models.PositiveIntegerField(default=20, validators=[MinValueValidator(1), MaxValueValidator(500)])
    # Trust rule: staff decide what the server executes. Only organization agents (staff's) may have
    # workspace tools; each session then gets its own directory under WORKSPACES_DIR.
    workspace_tools = models.CharField(
        max_length=20,
        choices=WorkspaceTools.choices,
        default=WorkspaceTools.NONE,
        help_text="Organization agents only. File tools: list, glob, grep, read, write and edit files in the "
        "session's own workspace directory (WORKSPACES_DIR/<session id>), where the session's uploaded files "
        "are too. Shell: also run_shell, only inside the bubblewrap sandbox (no network, the workspace the "
        "only writable path, limits on time, memory, processes and output); not offered where the sandbox "
        "can't run.",
    )
    is_active = models.BooleanField(default=True)
    custom_properties_schema = models.JSONField(
        default=dict,
        blank=True,
        validators=[validate_json_schema],
        help_text="JSON Schema the custom properties given at session start must satisfy.",
    )
    retention_days = models.PositiveIntegerField(
        null=True,
        blank=True,
        validators=[MinValueValidator(1)],
        help_text="Staff: sessions with this agent are deleted this many days after their last activity, when "
        "that is sooner than RETENTION_DAYS. Empty: RETENTION_DAYS alone.",
    )
    owner = _owner_field("agents")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name = "AI agent"
        ordering = ["name", "id"]
        indexes = [models.Index(fields=["category"], name="agents_agent_category_idx")]
        constraints = [
            models.UniqueConstraint(
                fields=["owner", "slug"],
                condition=Q(owner__isnull=False),
                name="agents_agent_slug_unique_per_owner",
                violation_error_message="You already have an agent with this slug.",
            ),
            models.UniqueConstraint(
                fields=["slug"],
                condition=Q(owner__isnull=True),
                name="agents_agent_slug_unique_org",
                violation_error_message="An organization-wide agent with this slug already exists.",
            ),
        ]

    def __str__(self) -> str:
        return self.name

    @property
    def prompt_variables(self) -> list[PromptVariable]:
        """The variables its system prompt (template or inline text) takes from the session."""
        return prompt_variables(self.system_prompt.body if self.system_prompt_id else self.system_prompt_text)

    def clean(self) -> None:
        if self.system_prompt_id and self.system_prompt_text.strip():
            raise ValidationError(
                {"system_prompt_text": ["Give either a system prompt template or inline text, not both."]}
            )
        if (
            self.owner_id is not None
            and self.slug
            and AIAgent.objects.filter(owner__isnull=True, slug=self.slug).exists()
        ):
            raise ValidationError({"slug": ["An organization agent has this slug; choose another."]})
        if self.owner_id is not None and self.workspace_tools != self.WorkspaceTools.NONE:
            raise ValidationError(
                {"workspace_tools": ["Only staff can give an agent workspace tools, on organization agents."]}
            )


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


class Catalog(models.Model):
    """One row whose `version` grows in the transaction of every change to what turns read: agents and
    their versions, LLM configs, prompts, integrations, budgets and group membership
    (agents/catalog.py). Each serving process keeps what it resolved until the version moves
    (assistant/runs/catalog.py), reading only this number at a turn's start."""

    ROW = 1

    version = models.PositiveBigIntegerField(default=0)

    class Meta:
        verbose_name = "catalog version"

    def __str__(self) -> str:
        return f"catalog v{self.version}"
