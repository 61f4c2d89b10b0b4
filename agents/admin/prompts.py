"""The prompt templates' admin and their versions."""

from __future__ import annotations

from django import forms
from django.contrib import admin

from agents import services
from agents.admin_forms import tags_field
from agents.models import PromptTemplate, PromptTemplateVersion

from .common import _OwnerScopeFilter


# --- Prompts -------------------------------------------------------------------------------------


class PromptTemplateVersionInline(admin.TabularInline):
    model = PromptTemplateVersion
    extra = 0
    can_delete = False
    fields = ("version", "body", "shared", "created_by", "created_at")
    readonly_fields = fields
    ordering = ("-version",)

    def has_add_permission(self, request, obj=None) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False


class PromptTemplateForm(forms.ModelForm):
    tags = tags_field()

    class Meta:
        model = PromptTemplate
        fields = "__all__"
        help_texts = {
            "visibility": "Organization prompts (no owner) are read by every user; a private prompt only by its owner.",
        }


@admin.register(PromptTemplate)
class PromptTemplateAdmin(admin.ModelAdmin):
    form = PromptTemplateForm
    list_display = ("name", "slug", "visibility", "version", "owner", "updated_at")
    list_filter = ("visibility", _OwnerScopeFilter)
    search_fields = ("name", "slug", "description", "body")
    prepopulated_fields = {"slug": ("name",)}
    autocomplete_fields = ("owner",)
    readonly_fields = ("version", "created_at", "updated_at")
    inlines = [PromptTemplateVersionInline]

    def get_changeform_initial_data(self, request) -> dict:
        # A new prompt starts without an owner, i.e. the organization's: visible to the organization.
        initial = super().get_changeform_initial_data(request)
        if not initial.get("owner"):
            initial.setdefault("visibility", PromptTemplate.Visibility.ORGANIZATION)
        return initial

    def save_model(self, request, obj, form, change) -> None:
        services.prompt_save(prompt=obj, user=request.user)


@admin.register(PromptTemplateVersion)
class PromptTemplateVersionAdmin(admin.ModelAdmin):
    list_display = ("template", "version", "shared", "created_by", "created_at")
    list_filter = ("shared", "created_at")
    search_fields = ("template__name", "template__slug", "body")
    list_select_related = ("template", "created_by")
    readonly_fields = ("template", "version", "body", "shared", "created_by", "created_at")

    def has_add_permission(self, request) -> bool:
        return False  # versions are written by saving a prompt

    def has_change_permission(self, request, obj=None) -> bool:
        return False
