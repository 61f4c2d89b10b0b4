"""Admin screens for the agent platform. Saves go through the services (defaults, version history),
secrets are typed into password fields (blank keeps the current value) and shown masked."""

from __future__ import annotations

import json

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import models
from django.http import HttpResponseNotAllowed, HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.urls import path, reverse
from django.utils.html import escape

from agents import selectors as agent_selectors
from agents import services
from agents.admin_forms import AllowedToolsMixin, CommaSeparatedListField, allowed_tools_fields, tags_field
from agents.validators import validate_tool_names
from agents.fields import mask_credentials, mask_secret
from agents.models import (
    AIAgent,
    Integration,
    LLMProviderConfig,
    Message,
    PromptTemplate,
    PromptTemplateVersion,
    UserAgentSession,
)
from connections.admin import ConnectionInline

KEEP_HELP = "Write-only. Leave blank to keep the current value."


class _NestingSafeJSONField(forms.JSONField):
    """json.loads raises RecursionError, not a decode error, for JSON nested a few hundred deep (the
    admin's stack is already deep): a form error instead of a 500. Limits are the validators' job."""

    def to_python(self, value):
        try:
            return super().to_python(value)
        except RecursionError:
            raise ValidationError("Nested too deeply to read.", code="invalid") from None

    def bound_data(self, data, initial):
        try:
            return super().bound_data(data, initial)
        except RecursionError:
            return forms.fields.InvalidJSONInput(data)

    def prepare_value(self, value):
        try:
            return super().prepare_value(value)
        except RecursionError:
            return "(nested too deeply to show)"


class _OptionalSchemaField(_NestingSafeJSONField):
    """A JSON object where empty means {} (none): shown as an empty box, not `null` or `{}`."""

    def prepare_value(self, value):
        return "" if value in (None, {}) else super().prepare_value(value)

    def has_changed(self, initial, data):
        return super().has_changed(initial or {}, data if data not in (None, "") else "{}")


_NESTING_SAFE_JSON = {models.JSONField: {"form_class": _NestingSafeJSONField}}


def _shortened(text: str, limit: int = 32) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


class _LLMConfigFilter(admin.RelatedFieldListFilter):
    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.title = "LLM config"  # not the field's "llm config"


class _OwnerScopeFilter(admin.SimpleListFilter):
    title = "scope"
    parameter_name = "scope"

    def lookups(self, request, model_admin):
        return [("org", "Organization-wide"), ("user", "A user's")]

    def queryset(self, request, queryset):
        if self.value() == "org":
            return queryset.filter(owner__isnull=True)
        if self.value() == "user":
            return queryset.filter(owner__isnull=False)
        return queryset


# --- LLM configs ---------------------------------------------------------------------------------


def _with_current(help_text: str, masked: str) -> str:
    """The input's help text, saying what is stored now (masked): one field, not a display and an input.
    Escaped: the admin shows help texts as HTML, and a user's credentials (their keys too) are theirs to write."""
    return f"Current: {escape(masked)}. {help_text}" if masked else f"None stored. {help_text}"


class LLMProviderConfigForm(forms.ModelForm):
    base_url = forms.URLField(
        label="Base URL",
        required=False,
        assume_scheme="https",
        help_text=LLMProviderConfig._meta.get_field("base_url").help_text,
    )
    api_key = forms.CharField(
        label="API key",
        required=False,
        strip=True,
        widget=forms.PasswordInput(render_value=False),
        help_text=KEEP_HELP,
    )
    clear_api_key = forms.BooleanField(
        label="Clear API key",
        required=False, help_text="Remove the key (ANTHROPIC_API_KEY or OPENAI_API_KEY is used then, by provider)."
    )

    class Meta:
        model = LLMProviderConfig
        fields = "__all__"
        labels = {
            "max_tokens": "Max tokens",
            "price_input_per_mtok": "Input price per million tokens",
            "price_output_per_mtok": "Output price per million tokens",
            "price_cache_read_per_mtok": "Cache read price per million tokens",
            "price_cache_write_per_mtok": "Cache write price per million tokens",
        }

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        if "api_key" in self.fields:
            masked = mask_secret(self.instance.api_key) if self.instance.pk else ""
            fallback = "Empty: ANTHROPIC_API_KEY or OPENAI_API_KEY from the settings, by provider."
            self.fields["api_key"].help_text = _with_current(f"{KEEP_HELP} {fallback}", masked)

    def _get_validation_exclusions(self):
        # The one-default rule is applied by services.llm_config_save, which first un-defaults the
        # previous default: checking it here would refuse the very change the service makes.
        exclusions = super()._get_validation_exclusions()
        exclusions.add("is_default")
        return exclusions

    def clean(self):
        cleaned = super().clean()
        if cleaned.get("clear_api_key"):
            cleaned["api_key"] = ""
        elif not cleaned.get("api_key"):
            cleaned["api_key"] = self.instance.api_key if self.instance.pk else ""
        return cleaned


@admin.register(LLMProviderConfig)
class LLMProviderConfigAdmin(admin.ModelAdmin):
    form = LLMProviderConfigForm
    list_display = ("name", "provider", "model", "api_key_display", "is_default", "for_embeddings", "owner", "updated_at")
    list_filter = ("provider", "is_default", "for_embeddings", _OwnerScopeFilter)
    search_fields = ("name", "model", "owner__email")
    autocomplete_fields = ("owner",)
    readonly_fields = ("created_at", "updated_at")
    fields = (
        "name",
        "provider",
        "model",
        "base_url",
        "api_key",
        "clear_api_key",
        "max_tokens",
        "temperature",
        "is_default",
        "for_embeddings",
        "embeddings_model",
        "owner",
        "price_input_per_mtok",
        "price_output_per_mtok",
        "price_cache_read_per_mtok",
        "price_cache_write_per_mtok",
        "created_at",
        "updated_at",
    )

    actions = ["test_connection"]
    change_form_template = "admin/agents/llmproviderconfig/change_form.html"
    # A person waits for each test call: a handful at a time.
    TEST_AT_ONCE = 5

    @admin.display(description="API key")
    def api_key_display(self, obj: LLMProviderConfig) -> str:
        return mask_secret(obj.api_key) or "— (settings)"

    def save_model(self, request, obj, form, change) -> None:
        services.llm_config_save(config=obj)

    def get_urls(self):
        test = self.admin_site.admin_view(self.test_connection_view)
        return [
            path("<int:object_id>/test-connection/", test, name="agents_llmproviderconfig_test_connection"),
            *super().get_urls(),
        ]

    def _report_connection(self, request, config: LLMProviderConfig) -> None:
        """One tiny call with the config as a turn would use it; the answer or the error as a message."""
        # The assistant app owns model calls; imported here so the agents app doesn't load it at import.
        from assistant.llm import LLMError
        from assistant.services import llm_config_check

        try:
            answer = llm_config_check(config=config)
        except LLMError as error:
            self.message_user(request, f"“{config.name}”: {error.code}: {error.message}", messages.ERROR)
            return
        shown = answer.strip()[:200] or "(an empty answer)"
        self.message_user(request, f"“{config.name}” answered: {shown}", messages.SUCCESS)

    @admin.action(description="Test connection (one tiny call to the model)")
    def test_connection(self, request, queryset) -> None:
        configs = list(queryset[: self.TEST_AT_ONCE + 1])
        if len(configs) > self.TEST_AT_ONCE:
            self.message_user(request, f"Select at most {self.TEST_AT_ONCE} configs to test at once.", messages.WARNING)
            return
        for config in configs:
            self._report_connection(request, config)

    def test_connection_view(self, request, object_id: int):
        if request.method != "POST":
            return HttpResponseNotAllowed(["POST"])
        config = get_object_or_404(LLMProviderConfig, pk=object_id)
        if not self.has_view_or_change_permission(request, config):
            raise PermissionDenied
        self._report_connection(request, config)
        return HttpResponseRedirect(reverse("admin:agents_llmproviderconfig_change", args=[config.pk]))


# --- Integrations --------------------------------------------------------------------------------


def _credentials_shown(integration: Integration) -> str:
    masked = mask_credentials(integration.credentials)
    if masked is None:
        return ""
    return masked if isinstance(masked, str) else json.dumps(masked, ensure_ascii=False)


class IntegrationForm(forms.ModelForm):
    credentials = forms.CharField(
        required=False,
        strip=True,
        widget=forms.PasswordInput(render_value=False),
        help_text=KEEP_HELP + ' A token, or a JSON object such as {"token": "…"}.',
    )
    clear_credentials = forms.BooleanField(required=False, help_text="Remove the stored credentials.")
    oauth_client_secret = forms.CharField(
        label="OAuth client secret", required=False, strip=True, widget=forms.PasswordInput(render_value=False),
        help_text=KEEP_HELP + " Empty with no secret stored: a public client.",
    )  # fmt: skip
    mcp_server = forms.JSONField(
        label="MCP server",
        required=False,
        widget=forms.Textarea(attrs={"rows": 6, "cols": 80}),
        help_text=Integration._meta.get_field("mcp_server").help_text,
    )

    class Meta:
        model = Integration
        fields = "__all__"
        labels = {"auth_type": "Auth type"}

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        if "auth" in self.fields:  # a form posted without it (older clients, scripts) keeps what is stored
            self.fields["auth"].required = False
        if "credentials" in self.fields:
            self.fields["credentials"].help_text = _with_current(
                self.fields["credentials"].help_text, _credentials_shown(self.instance) if self.instance.pk else ""
            )

    def clean_credentials(self):
        value = self.cleaned_data.get("credentials", "")
        if value.startswith("{"):
            try:
                return json.loads(value)
            except json.JSONDecodeError as exc:
                raise ValidationError(f"Not valid JSON: {exc.msg}.") from exc
        return value

    def clean(self):
        cleaned = super().clean()
        if cleaned.get("clear_credentials"):
            cleaned["credentials"] = None
        elif not cleaned.get("credentials"):
            cleaned["credentials"] = self.instance.credentials if self.instance.pk else None
        if not cleaned.get("auth"):
            cleaned["auth"] = self.instance.auth or "shared"
        if not cleaned.get("oauth_client_secret"):  # kept unless a new one is typed
            cleaned["oauth_client_secret"] = self.instance.oauth_client_secret if self.instance.pk else ""
        return cleaned


@admin.register(Integration)
class IntegrationAdmin(admin.ModelAdmin):
    form = IntegrationForm
    list_display = ("__str__", "provider", "auth", "credentials_display", "is_active", "owner", "updated_at")
    list_filter = ("provider", "auth", "is_active", _OwnerScopeFilter)
    inlines = [ConnectionInline]  # its connected users (connections app; never a token)

    def get_inline_instances(self, request, obj=None):
        # Connected users are listed on a per-user integration's page only (none to list while adding).
        return super().get_inline_instances(request, obj) if obj is not None and obj.per_user else []
    search_fields = ("name", "provider", "owner__email")
    autocomplete_fields = ("owner",)
    readonly_fields = ("created_at", "updated_at")
    fields = (
        "name",
        "provider",
        "auth_type",
        "credentials",
        "clear_credentials",
        "mcp_server",
        "auth",
        "oauth_client_id",
        "oauth_client_secret",
        "oauth_scopes",
        "tools_require_approval",
        "is_active",
        "owner",
        "created_at",
        "updated_at",
    )

    @admin.display(description="Credentials")
    def credentials_display(self, obj: Integration) -> str:
        return _credentials_shown(obj) or "—"

    actions = ["test_connection"]
    change_form_template = "admin/agents/integration/change_form.html"
    TEST_AT_ONCE = 3  # each starts a server while a person waits
    TOOLS_SHOWN = 40

    def save_model(self, request, obj, form, change) -> None:
        services.integration_save(integration=obj)

    def get_urls(self):
        test = self.admin_site.admin_view(self.test_connection_view)
        return [
            path("<int:object_id>/test-connection/", test, name="agents_integration_test_connection"),
            *super().get_urls(),
        ]

    def _report_connection(self, request, integration: Integration) -> None:
        """Starts the integration's MCP server and lists its tools, or says plainly why it can't."""
        from assistant.services import IntegrationCheckFailed, integration_check

        try:
            names = integration_check(integration=integration)
        except IntegrationCheckFailed as error:
            self.message_user(request, f"“{integration}”: {error}", messages.ERROR)
            return
        if not names:
            self.message_user(request, f"“{integration}” connected; its server offers no tools.", messages.WARNING)
            return
        shown = ", ".join(names[: self.TOOLS_SHOWN]) + (" …" if len(names) > self.TOOLS_SHOWN else "")
        count = f"{len(names)} tool{'s' if len(names) != 1 else ''}"
        self.message_user(request, f"“{integration}” connected: {count}: {shown}", messages.SUCCESS)

    @admin.action(description="Test connection (start the MCP server, list its tools)", permissions=["change"])
    def test_connection(self, request, queryset) -> None:
        integrations = list(queryset[: self.TEST_AT_ONCE + 1])
        if len(integrations) > self.TEST_AT_ONCE:
            self.message_user(
                request, f"Select at most {self.TEST_AT_ONCE} integrations to test at once.", messages.WARNING
            )
            return
        for integration in integrations:
            self._report_connection(request, integration)

    def test_connection_view(self, request, object_id: int):
        if request.method != "POST":
            return HttpResponseNotAllowed(["POST"])
        integration = get_object_or_404(Integration, pk=object_id)
        if not self.has_change_permission(request, integration):
            raise PermissionDenied
        self._report_connection(request, integration)
        return HttpResponseRedirect(reverse("admin:agents_integration_change", args=[integration.pk]))


# --- Prompts -------------------------------------------------------------------------------------


class PromptTemplateVersionInline(admin.TabularInline):
    model = PromptTemplateVersion
    extra = 0
    can_delete = False
    fields = ("version", "body", "shared", "created_by", "created_at")
    readonly_fields = fields
    ordering = ("-version",)

    def has_add_permission(self, request, obj=None) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False


class PromptTemplateForm(forms.ModelForm):
    tags = tags_field()

    class Meta:
        model = PromptTemplate
        fields = "__all__"
        help_texts = {
            "visibility": "Organization prompts (no owner) are read by every user; a private prompt only by its owner.",
        }


@admin.register(PromptTemplate)
class PromptTemplateAdmin(admin.ModelAdmin):
    form = PromptTemplateForm
    list_display = ("name", "slug", "visibility", "version", "owner", "updated_at")
    list_filter = ("visibility", _OwnerScopeFilter)
    search_fields = ("name", "slug", "description", "body")
    prepopulated_fields = {"slug": ("name",)}
    autocomplete_fields = ("owner",)
    readonly_fields = ("version", "created_at", "updated_at")
    inlines = [PromptTemplateVersionInline]

    def get_changeform_initial_data(self, request) -> dict:
        # A new prompt starts without an owner, i.e. the organization's: visible to the organization.
        initial = super().get_changeform_initial_data(request)
        if not initial.get("owner"):
            initial.setdefault("visibility", PromptTemplate.Visibility.ORGANIZATION)
        return initial

    def save_model(self, request, obj, form, change) -> None:
        services.prompt_save(prompt=obj, user=request.user)


@admin.register(PromptTemplateVersion)
class PromptTemplateVersionAdmin(admin.ModelAdmin):
    list_display = ("template", "version", "shared", "created_by", "created_at")
    list_filter = ("shared", "created_at")
    search_fields = ("template__name", "template__slug", "body")
    list_select_related = ("template", "created_by")
    readonly_fields = ("template", "version", "body", "shared", "created_by", "created_at")

    def has_add_permission(self, request) -> bool:
        return False  # versions are written by saving a prompt

    def has_change_permission(self, request, obj=None) -> bool:
        return False


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


# --- Sessions and messages -----------------------------------------------------------------------


class MessageInline(admin.TabularInline):
    model = Message
    extra = 0
    can_delete = False
    fields = ("seq", "role", "status", "text_preview", "model", "input_tokens", "output_tokens", "created_at")
    readonly_fields = fields
    ordering = ("seq",)
    show_change_link = True

    @admin.display(description="Text")
    def text_preview(self, obj: Message) -> str:
        text = obj.text
        return text[:200] + ("…" if len(text) > 200 else "")

    def has_add_permission(self, request, obj=None) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False


@admin.register(UserAgentSession)
class UserAgentSessionAdmin(admin.ModelAdmin):
    list_display = ("__str__", "owner", "agent", "is_active", "created_at", "updated_at")
    list_filter = ("is_active", "agent")
    search_fields = ("title", "owner__email", "agent__slug", "agent__name")
    list_select_related = ("owner", "agent")
    autocomplete_fields = ("owner", "agent")
    readonly_fields = ("created_at", "updated_at")
    date_hierarchy = "created_at"
    inlines = [MessageInline]
    formfield_overrides = _NESTING_SAFE_JSON


@admin.register(Message)
class MessageAdmin(admin.ModelAdmin):
    list_display = ("session", "seq", "role", "status", "model", "input_tokens", "output_tokens", "created_at")
    list_filter = ("role", "status", "model")
    search_fields = ("session__title", "session__owner__email", "error_code")
    list_select_related = ("session",)
    autocomplete_fields = ("session",)
    readonly_fields = ("created_at", "updated_at")
    date_hierarchy = "created_at"


# --- Agent versions (agents/versions.py) ---------------------------------------------------------

from agents.models import AIAgentVersion  # noqa: E402  (kept with its admin: an additive block)


@admin.register(AIAgentVersion)
class AIAgentVersionAdmin(admin.ModelAdmin):
    """Written by every save of an agent; read-only. Revert: the action restores a version's fields
    (with the checks of any edit) and records a new version."""

    list_display = ("agent", "version", "changed_fields", "note", "created_by", "created_at")
    list_filter = ("agent",)
    list_select_related = ("agent", "created_by")
    search_fields = ("agent__name", "agent__slug", "note")
    readonly_fields = ("agent", "version", "snapshot", "changed_fields", "note", "created_by", "created_at")
    actions = ["revert_to_version"]

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False

    @admin.action(description="Revert the agent to the selected version")
    def revert_to_version(self, request, queryset) -> None:
        from django.contrib import messages
        from django.core.exceptions import ValidationError

        from agents.versions import agent_revert

        if queryset.count() != 1:
            self.message_user(request, "Select exactly one version to revert to.", messages.ERROR)
            return
        version = queryset.select_related("agent").get()
        try:
            new = agent_revert(version=version, user=request.user)
        except ValidationError as exc:
            self.message_user(request, f"Can't revert {version}: {'; '.join(exc.messages)}", messages.ERROR)
            return
        self.message_user(request, f"{version.agent} reverted to version {version.version} (now version {new.version}).")
