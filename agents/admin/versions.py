"""The agent versions' admin (agents/versions.py)."""

from __future__ import annotations

from django.contrib import admin, messages
from django.core.exceptions import ValidationError

from agents.models import AIAgentVersion


# --- Agent versions (agents/versions.py) ---------------------------------------------------------


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
