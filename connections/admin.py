"""Connections in the admin: who is connected to what (never a token); staff disconnect (the tokens are
revoked at the server when it offers revocation). The integration's page lists its connected users."""

from __future__ import annotations

from django import forms
from django.contrib import admin, messages

from connections import services
from connections.models import Connection

_SHOWN = ("user", "integration", "status", "scopes", "expires_at", "connected_at", "updated_at")


class _DisconnectingFormSet(forms.BaseInlineFormSet):
    def delete_existing(self, obj, commit=True):  # a deleted row is disconnected, revoked first
        if commit:
            services.connection_delete(connection=obj)


class ConnectionInline(admin.TabularInline):
    """On an integration's page: its connected users; "Delete" disconnects one."""

    model = Connection
    formset = _DisconnectingFormSet
    fields = ("user", "status", "scopes", "expires_at", "connected_at")
    readonly_fields = fields
    extra = 0
    can_delete = True
    verbose_name_plural = "Connected users (delete: disconnect, revoking the tokens at the server)"

    def has_add_permission(self, request, obj=None) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False


@admin.register(Connection)
class ConnectionAdmin(admin.ModelAdmin):
    list_display = ("user", "integration", "status", "expires_at", "connected_at")
    list_filter = ("status", "integration")
    search_fields = ("user__email", "integration__name", "integration__provider")
    list_select_related = ("user", "integration")
    fields = _SHOWN
    readonly_fields = _SHOWN
    actions = ["disconnect"]

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def delete_model(self, request, obj) -> None:
        services.connection_delete(connection=obj)

    def delete_queryset(self, request, queryset) -> None:
        for connection in queryset.select_related("client", "integration"):
            services.connection_delete(connection=connection)

    def get_actions(self, request):
        actions = super().get_actions(request)
        actions.pop("delete_selected", None)  # "disconnect" revokes too
        return actions

    @admin.action(description="Disconnect selected connections (revoke their tokens)", permissions=["delete"])
    def disconnect(self, request, queryset) -> None:
        count = 0
        for connection in queryset.select_related("client", "integration"):
            services.connection_delete(connection=connection)
            count += 1
        self.message_user(request, f"Disconnected {count} connection(s).", messages.SUCCESS)
