from __future__ import annotations

from django.contrib import admin

from orgproxy.models import ClientSession


@admin.register(ClientSession)
class ClientSessionAdmin(admin.ModelAdmin):
    list_display = ("session_id", "user", "bot_id", "upstream_user_id", "created_at")
    list_filter = ("bot_id",)
    search_fields = ("session_id", "upstream_user_id", "user__email")
    readonly_fields = ("session_id", "user", "upstream_user_id", "bot_id", "created_at")
    list_select_related = ("user",)

    def has_add_permission(self, request) -> bool:
        return False  # sessions are created upstream, through the API
