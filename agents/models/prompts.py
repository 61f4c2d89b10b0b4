"""The prompt library: templates, their variables and their versions."""

from __future__ import annotations

import re
from dataclasses import dataclass

from django.conf import settings
from django.db import models
from django.db.models import Q

from agents.validators import validate_tags

from .common import _owner_field


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
