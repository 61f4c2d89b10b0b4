"""The sessions' and messages' admin."""

from __future__ import annotations

from django.contrib import admin

from agents.models import Message, UserAgentSession

from .common import _NESTING_SAFE_JSON


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
