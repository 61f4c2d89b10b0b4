"""The agents' admin."""

from __future__ import annotations

from django import forms
from django.contrib import admin, messages

from agents import selectors as agent_selectors, services
from agents.admin_forms import allowed_tools_fields, AllowedToolsMixin, CommaSeparatedListField, tags_field
from agents.models import AIAgent
from agents.validators import validate_tool_names

from .common import _LLMConfigFilter, _NESTING_SAFE_JSON, _OptionalSchemaField, _OwnerScopeFilter, _shortened


# --- Agents --------------------------------------------------------------------------------------


SCHEMA_EXAMPLE = '{"type": "object", "properties": {"team": {"type": "string"}}, "required": ["team"]}'


class AIAgentForm(AllowedToolsMixin, forms.ModelForm):
    tags = tags_field()
    allowed_tools, allowed_tools_other = allowed_tools_fields()
    approval_required = CommaSeparatedListField(
        label="Approval required",
        list_validators=[validate_tool_names],
        help_text="Tools whose calls wait for the user to allow them, comma-separated: names or patterns as in "
        'allowed tools (write_file, github__create_*); "*" for all. Integrations that require approval add theirs.',
    )
    custom_properties_schema = _OptionalSchemaField(
        label="Custom properties schema",
        required=False,
        widget=forms.Textarea(attrs={"rows": 6, "cols": 80, "placeholder": SCHEMA_EXAMPLE}),
        error_messages={"invalid": f"Enter valid JSON, for example {SCHEMA_EXAMPLE}."},
        help_text=(
            "A JSON Schema (2020-12) the custom properties given at session start must satisfy; they fill the "
            f"prompt's {{{{ variables }}}}. Empty: any object. Example: {SCHEMA_EXAMPLE}"
        ),
    )

    class Meta:
        model = AIAgent
        fields = "__all__"
        labels = {"llm_config": "LLM config", "system_prompt_text": "System prompt text", "max_turns": "Max turns"}

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        if "workspace_tools" in self.fields:  # a form (or script) that leaves it out means "none"
            self.fields["workspace_tools"].required = False
        self._setup_allowed_tools()

    def clean_custom_properties_schema(self):
        value = self.cleaned_data.get("custom_properties_schema")
        return {} if value in (None, "") else value

    def clean(self):
        cleaned = super().clean()
        self._combined_allowed_tools(cleaned)
        return cleaned

    def clean_workspace_tools(self) -> str:
        return self.cleaned_data.get("workspace_tools") or AIAgent.WorkspaceTools.NONE

    def _post_clean(self) -> None:
        # The trust rule of services.agent_save, with the integrations chosen on this form (the admin
        # saves many-to-many fields after the agent), shown on the fields instead of failing the save.
        super()._post_clean()
        if "integrations" not in self.cleaned_data:
            return
        problems = agent_selectors.agent_reference_problems(
            agent=self.instance, integrations=list(self.cleaned_data["integrations"])
        )
        for field, field_messages in problems.items():
            for message in field_messages:
                self.add_error(field if field in self.fields else None, message)


@admin.register(AIAgent)
class AIAgentAdmin(admin.ModelAdmin):
    form = AIAgentForm
    # Fits a 1280 px screen beside the admin's navigation: the prompt and the model in one column, the
    # owner shortened, no dates (the category is a filter).
    list_display = ("name", "slug", "prompt_and_model", "active", "owner_shown")
    list_filter = ("is_active", "category", "workspace_tools", ("llm_config", _LLMConfigFilter), _OwnerScopeFilter)
    search_fields = ("name", "slug", "description", "category")
    list_select_related = ("system_prompt", "llm_config", "owner")
    prepopulated_fields = {"slug": ("name",)}
    autocomplete_fields = ("owner", "system_prompt", "llm_config")
    filter_horizontal = ("integrations",)
    readonly_fields = ("created_at", "updated_at")
    formfield_overrides = _NESTING_SAFE_JSON
    fieldsets = (
        (None, {"fields": ("name", "slug", "description", "category", "tags", "is_active", "owner")}),
        ("Prompt and model", {"fields": ("system_prompt", "system_prompt_text", "llm_config", "max_turns")}),
        ("Tools", {"fields": ("allowed_tools", "allowed_tools_other", "approval_required", "integrations",
                              "workspace_tools")}),  # fmt: skip
        ("Sessions", {"fields": ("custom_properties_schema", "retention_days")}),
        ("Dates", {"fields": ("created_at", "updated_at")}),
    )

    @admin.display(description="Active", boolean=True, ordering="is_active")
    def active(self, obj: AIAgent) -> bool:
        return obj.is_active

    @admin.display(description="Owner", ordering="owner__email")
    def owner_shown(self, obj: AIAgent) -> str:
        return _shortened(obj.owner.email, 24) if obj.owner_id else "Organization"

    @admin.display(description="Prompt / model")
    def prompt_and_model(self, obj: AIAgent) -> str:
        prompt = str(obj.system_prompt) if obj.system_prompt_id else "(inline)"
        model = str(obj.llm_config) if obj.llm_config_id else "(default)"
        return f"{_shortened(prompt)} · {_shortened(model)}"

    def save_model(self, request, obj, form, change) -> None:
        # Integrations (many-to-many) are saved by the admin's save_related afterwards.
        services.agent_save(agent=obj)
        required = [variable.name for variable in obj.prompt_variables if variable.required]
        if required:
            self.message_user(
                request,
                f"“{obj}”'s prompt needs {', '.join(required)} from each session (its custom properties): "
                "a chat without them asks for the values first. Give a placeholder a default "
                '(for example {{ team | default: "Platform" }}) to make it optional.',
                messages.WARNING,
            )
