from __future__ import annotations

from django import forms
from django.contrib import admin
from django.contrib.auth.admin import UserAdmin as DjangoUserAdmin
from django.contrib.auth.forms import AdminUserCreationForm, UserChangeForm

from accounts.models import User, normalize_email


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
    list_filter = ("provider", "is_active", "is_staff", "is_superuser")
    search_fields = ("email", "name", "external_id")
    ordering = ("email",)
    readonly_fields = ("created_at", "updated_at", "last_login")
    fieldsets = (
        (None, {"fields": ("email", "name", "password")}),
        ("Sign-in", {"fields": ("provider", "external_id")}),
        ("Permissions", {"fields": ("is_active", "is_staff", "is_superuser", "groups", "user_permissions")}),
        ("Dates", {"fields": ("last_login", "created_at", "updated_at")}),
    )
    add_fieldsets = (
        (None, {"classes": ("wide",), "fields": ("email", "name", "usable_password", "password1", "password2")}),
    )
