"""Agents: a prompt, a model, tools and integrations."""

from __future__ import annotations

from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.db.models import Q

from agents.validators import validate_json_schema, validate_tags, validate_tool_names

from .common import _owner_field
from .llm_configs import LLMProviderConfig
from .integrations import Integration
from .prompts import prompt_variables, PromptTemplate, PromptVariable


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
