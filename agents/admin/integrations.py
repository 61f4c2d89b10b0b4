"""The integrations' admin: MCP servers and their credentials (write-only, shown masked)."""

from __future__ import annotations

import json

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import HttpResponseNotAllowed, HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.urls import path, reverse

from agents import services
from agents.fields import mask_credentials
from agents.models import Integration
from connections.admin import ConnectionInline

from .common import _OwnerScopeFilter, KEEP_HELP
from .llm_configs import _with_current


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
