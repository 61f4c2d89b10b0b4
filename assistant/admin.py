"""Staff's view of approvals: which tool calls wait for whom, and how each was decided. Read-only: a
decision is its user's (assistant/runs/approvals.py), and the audit keeps what was done."""

from __future__ import annotations

import json

from django.contrib import admin
from django.utils.html import format_html

from assistant.models import Approval


@admin.register(Approval)
class ApprovalAdmin(admin.ModelAdmin):
    list_display = ("name", "status", "owner", "agent", "session_id", "created_at", "expires_at", "decided_at")
    list_filter = ("status", "session__agent__slug")
    search_fields = ("name", "session__owner__email", "session__agent__slug", "tool_use_id")
    list_select_related = ("session__owner", "session__agent")
    date_hierarchy = "created_at"
    fields = ("id", "session", "name", "tool_use_id", "input_shown", "status", "reason", "decided_by", "decided_at",
              "expires_at", "created_at")  # fmt: skip
    readonly_fields = fields

    @admin.display(description="User")
    def owner(self, obj: Approval) -> str:
        return obj.session.owner.email

    @admin.display(description="Agent")
    def agent(self, obj: Approval) -> str:
        return obj.session.agent.slug

    @admin.display(description="Input")
    def input_shown(self, obj: Approval) -> str:
        return format_html("<pre>{}</pre>", json.dumps(obj.input, indent=2, ensure_ascii=False)[:20_000])

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False
