from django.contrib import admin

from audit.models import AuditEvent


@admin.register(AuditEvent)
class AuditEventAdmin(admin.ModelAdmin):
    """Read-only: staff filter it; nobody adds, changes or deletes."""

    list_display = ("created_at", "kind", "actor_email", "ip", "agent", "session_id", "tool", "outcome", "source")
    list_filter = ("kind", "outcome", "source", "created_at")
    search_fields = ("actor_email", "agent", "tool", "ip")
    date_hierarchy = "created_at"

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False
