from __future__ import annotations

from django import forms
from django.contrib import admin
from django.contrib.auth.admin import UserAdmin as DjangoUserAdmin
from django.contrib.auth.forms import AdminUserCreationForm, UserChangeForm

from accounts.models import ApiKey, User, normalize_email
from accounts.services import api_key_revoke


class _NormalizedEmailMixin:
    def clean_email(self):
        email = normalize_email(self.cleaned_data["email"])
        others = User.objects.filter(email=email).exclude(pk=getattr(self.instance, "pk", None))
        if others.exists():
            raise forms.ValidationError("A user with this email already exists.")
        return email


class UserCreationForm(_NormalizedEmailMixin, AdminUserCreationForm):
    class Meta:
        model = User
        fields = ("email", "name")


class UserEditForm(_NormalizedEmailMixin, UserChangeForm):
    class Meta:
        model = User
        fields = "__all__"


@admin.register(User)
class UserAdmin(DjangoUserAdmin):
    form = UserEditForm
    add_form = UserCreationForm
    list_display = ("email", "name", "provider", "is_active", "is_staff", "created_at", "last_login")
    list_filter = ("provider", "is_active", "is_staff", "is_superuser", "legal_hold")
    search_fields = ("email", "name", "external_id")
    ordering = ("email",)
    readonly_fields = ("created_at", "updated_at", "last_login")
    fieldsets = (
        (None, {"fields": ("email", "name", "password")}),
        ("Sign-in", {"fields": ("provider", "external_id")}),
        ("Permissions", {"fields": ("is_active", "is_staff", "is_superuser", "groups", "user_permissions")}),
        ("Data lifecycle", {"fields": ("legal_hold",)}),
        ("Dates", {"fields": ("last_login", "created_at", "updated_at")}),
    )
    add_fieldsets = (
        (None, {"classes": ("wide",), "fields": ("email", "name", "usable_password", "password1", "password2")}),
    )


@admin.register(ApiKey)
class ApiKeyAdmin(admin.ModelAdmin):
    """Staff see every personal API key (never a secret: only its hash is stored) and revoke them."""

    list_display = ("name", "user", "prefix", "created_at", "last_used_at", "expires_at", "revoked_at")
    list_filter = (("revoked_at", admin.EmptyFieldListFilter), ("expires_at", admin.EmptyFieldListFilter), "created_at")
    search_fields = ("name", "prefix", "user__email", "user__name")
    list_select_related = ("user",)
    readonly_fields = ("user", "name", "prefix", "created_at", "last_used_at", "expires_at", "revoked_at")
    exclude = ("key_hash",)
    actions = ["revoke"]

    def has_add_permission(self, request) -> bool:
        return False  # keys are made by their owners, who alone see the secret

    @admin.action(description="Revoke selected API keys", permissions=["change"])
    def revoke(self, request, queryset) -> None:
        keys = list(queryset.filter(revoked_at__isnull=True))
        for api_key in keys:
            api_key_revoke(api_key=api_key)
        self.message_user(request, f"Revoked {len(keys)} API key(s).")
