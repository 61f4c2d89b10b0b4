"""The LLM provider configs' admin: the API key write-only, shown masked."""

from __future__ import annotations

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.http import HttpResponseNotAllowed, HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.urls import path, reverse
from django.utils.html import escape

from agents import services
from agents.fields import mask_secret
from agents.models import LLMProviderConfig

from .common import _OwnerScopeFilter, KEEP_HELP


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
