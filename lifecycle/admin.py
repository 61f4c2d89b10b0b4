"""Staff's side of the data lifecycle: export any user, erase a user (with a confirmation page), see
and download exports. The user list's actions are added to accounts' admin by re-registering it."""

from __future__ import annotations

from django.contrib import admin, messages
from django.contrib.admin.utils import unquote
from django.http import FileResponse, Http404, HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html

from accounts.admin import UserAdmin
from accounts.models import User
from audit.services import data_export_record
from lifecycle.erase import ErasureRefused, erasure_preview, user_erase
from lifecycle.export import ExportRefused, export_delete, export_file, export_start
from lifecycle.models import Export

ERASE_CONFIRM = "erase_confirmed"


@admin.register(Export)
class ExportAdmin(admin.ModelAdmin):
    list_display = ("id", "user", "state", "size", "requested_by", "created_at", "expires_at", "download")
    list_filter = ("state", "created_at")
    search_fields = ("user__email", "user__name")
    list_select_related = ("user", "requested_by")
    readonly_fields = ("id", "user", "requested_by", "state", "file_name", "size", "error", "created_at",
                       "finished_at", "expires_at")  # fmt: skip
    actions = ["delete_exports"]

    def has_add_permission(self, request) -> bool:
        return False  # started from the user list's "Export user data" action

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def get_actions(self, request):
        actions = super().get_actions(request)
        actions.pop("delete_selected", None)  # the rows' files go too: delete_exports
        return actions

    @admin.display(description="Download")
    def download(self, export: Export) -> str:
        if export.state != Export.State.READY:
            return "—"
        return format_html('<a href="{}">zip</a>', reverse("admin:lifecycle_export_download", args=[export.pk]))

    @admin.action(description="Delete selected exports (and their files)", permissions=["delete"])
    def delete_exports(self, request, queryset) -> None:
        exports = list(queryset)
        for export in exports:
            export_delete(export)
        self.message_user(request, f"Deleted {len(exports)} export(s).")

    def get_urls(self):
        view = self.admin_site.admin_view(self.download_view)
        return [path("<uuid:export_id>/download/", view, name="lifecycle_export_download"), *super().get_urls()]

    def download_view(self, request, export_id):
        if not self.has_view_permission(request):
            raise Http404
        export = get_object_or_404(Export, pk=export_id, state=Export.State.READY)
        try:
            handle = export_file(export).open("rb")
        except FileNotFoundError:
            raise Http404 from None
        data_export_record(request=request, user_id=export.user_id, export_id=str(export.pk), step="downloaded")
        return FileResponse(handle, as_attachment=True, filename=f"conduit-export-{export.user_id}.zip",
                            content_type="application/zip")  # fmt: skip


admin.site.unregister(User)


@admin.register(User)
class LifecycleUserAdmin(UserAdmin):
    """A user is never deleted plainly here: Django's Delete (the change page's button, the list's
    "Delete selected") would skip what erasure does (legal hold, Claire sessions, export files, audit
    rows anonymized). Both lead to the erasure's confirmation instead."""

    actions = ["export_data", "erase_users"]

    def get_actions(self, request):
        actions = super().get_actions(request)
        actions.pop("delete_selected", None)  # erase_users instead
        return actions

    def delete_view(self, request, object_id, extra_context=None):
        user = self.get_object(request, unquote(object_id))
        if user is None or not self.has_delete_permission(request, user):
            return super().delete_view(request, object_id, extra_context)  # Django's 404 / 403
        queryset = User.objects.filter(pk=user.pk)
        answer = self.erase_users(request, queryset, action_url=request.path)
        if answer is not None:
            return answer
        return HttpResponseRedirect(reverse("admin:accounts_user_changelist"))

    @admin.action(description="Export user data (zip)", permissions=["view"])
    def export_data(self, request, queryset) -> None:
        for user in queryset:
            try:
                export = export_start(user=user, requested_by=request.user)
            except ExportRefused as refused:
                self.message_user(request, f"{user}: {refused}", messages.WARNING)
            else:
                data_export_record(request=request, user_id=user.pk, export_id=str(export.pk), step="started")
                self.message_user(request, f"{user}: export started; it appears under Data lifecycle › Exports.")

    @admin.action(description="Erase user (delete everything of theirs)", permissions=["delete"])
    def erase_users(self, request, queryset, *, action_url: str = ""):
        """The confirmation page (posting back to `action_url`: the list's action, or a user's Delete
        page), then the erasure of each user."""
        users = list(queryset.order_by("pk")[:100])
        if request.method != "POST" or request.POST.get(ERASE_CONFIRM) != "yes":
            context = {
                "action_url": action_url,
                **self.admin_site.each_context(request),
                "title": "Erase users?",
                "rows": [(user, erasure_preview(user)) for user in users],
                "queryset": users,
                "action_checkbox_name": admin.helpers.ACTION_CHECKBOX_NAME,
                "confirm_field": ERASE_CONFIRM,
                "opts": self.model._meta,
            }
            return TemplateResponse(request, "admin/lifecycle/erase_confirm.html", context)
        for user in users:
            if user.pk == request.user.pk:
                self.message_user(request, "You can't erase yourself here.", messages.ERROR)
                continue
            try:
                marker = user_erase(user=user, by=request.user, source="admin")
            except ErasureRefused as refused:
                self.message_user(request, f"{user}: {refused}", messages.ERROR)
            else:
                self.message_user(request, f"Erased a user; audit rows and usage now show {marker}.")
        return None
