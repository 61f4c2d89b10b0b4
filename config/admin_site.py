"""The admin site, branded Conduit, whose landing page is a dashboard."""

from __future__ import annotations

from django.contrib import admin
from django.contrib.admin.apps import AdminConfig


class ConduitAdminSite(admin.AdminSite):
    site_header = "Conduit administration"
    site_title = "Conduit admin"
    index_title = "Dashboard"
    index_template = "admin/conduit_index.html"
    site_url = "/chat/"  # "View site": the chat page (the root answers browsers the same way)

    def index(self, request, extra_context=None):
        from agents.dashboard import admin_dashboard  # models load after the admin app

        return super().index(request, {"dashboard": admin_dashboard(), **(extra_context or {})})

    def get_urls(self):
        from django.urls import path

        from usage.admin_views import usage_report

        usage = path("usage/", self.admin_view(lambda request: usage_report(request, self)), name="usage_report")
        return [usage, *super().get_urls()]


class ConduitAdminConfig(AdminConfig):
    """django.contrib.admin, with ConduitAdminSite as `admin.site`."""

    default = False  # named in INSTALLED_APPS; never picked for an app by itself
    default_site = "config.admin_site.ConduitAdminSite"
