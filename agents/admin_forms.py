"""Form fields of the admin screens that stand in for raw JSON: lists typed as comma-separated
words, and an agent's allowed tools as checkboxes of the known tools plus other names or patterns."""

from __future__ import annotations

import json

from django import forms
from django.core.exceptions import ValidationError

from agents.validators import validate_tags, validate_tool_names


def split_words(value: str) -> list[str]:
    """`demo, friendly` (commas or new lines) → ["demo", "friendly"]; empty entries dropped. A JSON
    list (`["demo"]`, what these fields used to take) is read as that list."""
    value = value.strip()
    if value.startswith("["):
        try:
            parsed = json.loads(value)
        except (json.JSONDecodeError, RecursionError):
            parsed = None
        if isinstance(parsed, list) and all(isinstance(item, str) for item in parsed):
            return [item.strip() for item in parsed if item.strip()]
    return [word.strip() for word in value.replace("\n", ",").split(",") if word.strip()]


class CommaSeparatedListField(forms.CharField):
    """A list of strings as one text input; the model field's validators run on the list."""

    def __init__(self, *, list_validators=(), **kwargs) -> None:
        kwargs.setdefault("required", False)
        kwargs.setdefault("widget", forms.TextInput(attrs={"size": 60}))
        super().__init__(**kwargs)
        self.list_validators = list(list_validators)

    def prepare_value(self, value):
        if isinstance(value, (list, tuple)):
            return ", ".join(str(item) for item in value)
        return value

    def to_python(self, value) -> list[str]:
        if isinstance(value, (list, tuple)):
            return [str(item) for item in value]
        return split_words(super().to_python(value) or "")

    def validate(self, value) -> None:
        if self.required and not value:
            raise ValidationError(self.error_messages["required"], code="required")
        for validator in self.list_validators:
            validator(value)

    def has_changed(self, initial, data) -> bool:
        return list(initial or []) != self.to_python(data)


def tags_field(**kwargs) -> CommaSeparatedListField:
    return CommaSeparatedListField(
        list_validators=[validate_tags],
        help_text="Comma-separated lower-case words, for example: demo, code-review, python.",
        **kwargs,
    )


def known_tool_names() -> list[str]:
    """The built-in workspace tools an agent can be allowed (the assistant app owns them)."""
    from assistant.tools.workspace import TOOLS

    return list(TOOLS)


def _known_tool_choices() -> list[tuple[str, str]]:
    return [(name, name) for name in known_tool_names()]


OTHER_TOOLS_HELP = (
    "Other tool names or patterns, comma-separated: an integration's MCP tools as server__tool, or server__* "
    "for every tool of that server. No tool checked and nothing here: every tool the agent has."
)


class AllowedToolsMixin:
    """`allowed_tools` (stored as one list) shown as checkboxes of the known tools and a text input
    for other names and patterns (MCP tools `server__tool`, `server__*`, Claude Code's `Read`).
    The form declares both fields with `allowed_tools_fields()`."""

    def _setup_allowed_tools(self) -> None:
        if "allowed_tools" not in self.fields:
            return
        known = set(known_tool_names())
        stored = list(self.instance.allowed_tools or []) if self.instance.pk else []
        # The stored list is split between the two fields (what the form shows when not bound).
        self.initial["allowed_tools"] = [name for name in stored if name in known]
        self.initial["allowed_tools_other"] = [name for name in stored if name not in known]

    def _combined_allowed_tools(self, cleaned: dict) -> None:
        if "allowed_tools" not in self.fields or "allowed_tools_other" not in cleaned:
            return
        combined = list(dict.fromkeys([*cleaned.get("allowed_tools", []), *cleaned["allowed_tools_other"]]))
        stored = list(self.instance.allowed_tools or []) if self.instance.pk else []
        # Same tools as before: keep the stored order (no spurious change in the version history).
        cleaned["allowed_tools"] = stored if set(stored) == set(combined) else combined


def allowed_tools_fields() -> tuple[forms.MultipleChoiceField, CommaSeparatedListField]:
    known = forms.MultipleChoiceField(
        required=False,
        choices=_known_tool_choices,
        widget=forms.CheckboxSelectMultiple,
        label="Allowed tools",
        help_text="Built-in workspace tools (the agent has them only with workspace tools, below).",
    )
    other = CommaSeparatedListField(
        label="Other allowed tools", list_validators=[validate_tool_names], help_text=OTHER_TOOLS_HELP
    )
    return known, other
