import json

from django.contrib import admin
from django.utils.html import format_html

from audit.models import AuditEvent


@admin.register(AuditEvent)
class AuditEventAdmin(admin.ModelAdmin):
    """Read-only: staff filter it; nobody adds, changes or deletes."""

    list_display = ("created_at", "kind", "actor_email", "ip", "agent", "session_id", "tool", "outcome", "approval",
                    "duration_ms", "source")  # fmt: skip
    # The text columns, not the foreign keys: a deleted user's or agent's rows are still found.
    list_filter = ("kind", ("agent", admin.AllValuesFieldListFilter), ("actor_email", admin.AllValuesFieldListFilter),
                   ("tool", admin.AllValuesFieldListFilter), "outcome", "approval", "source", "created_at")  # fmt: skip
    search_fields = ("actor_email", "agent", "tool", "ip", "approved_by_email", "result_digest")
    date_hierarchy = "created_at"
    fields = ("kind", "created_at", "actor_email", "actor", "ip", "source", "agent", "session_id", "tool", "outcome",
              "duration_ms", "input_pretty", "result_preview", "result_digest", "approval", "approved_by_email",
              "approved_by", "approved_at", "approval_reason")  # fmt: skip
    readonly_fields = fields

    @admin.display(description="input")
    def input_pretty(self, obj: AuditEvent):
        if obj.input is None:
            return "-"
        return format_html("<pre>{}</pre>", json.dumps(obj.input, indent=2, ensure_ascii=False, sort_keys=True))

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False
