"""What the admin screens share: the write-only help text, JSON fields that refuse deep nesting, list filters."""

from __future__ import annotations

from django import forms
from django.contrib import admin
from django.core.exceptions import ValidationError
from django.db import models


KEEP_HELP = "Write-only. Leave blank to keep the current value."


class _NestingSafeJSONField(forms.JSONField):
    """json.loads raises RecursionError, not a decode error, for JSON nested a few hundred deep (the
    admin's stack is already deep): a form error instead of a 500. Limits are the validators' job."""

    def to_python(self, value):
        try:
            return super().to_python(value)
        except RecursionError:
            raise ValidationError("Nested too deeply to read.", code="invalid") from None

    def bound_data(self, data, initial):
        try:
            return super().bound_data(data, initial)
        except RecursionError:
            return forms.fields.InvalidJSONInput(data)

    def prepare_value(self, value):
        try:
            return super().prepare_value(value)
        except RecursionError:
            return "(nested too deeply to show)"


class _OptionalSchemaField(_NestingSafeJSONField):
    """A JSON object where empty means {} (none): shown as an empty box, not `null` or `{}`."""

    def prepare_value(self, value):
        return "" if value in (None, {}) else super().prepare_value(value)

    def has_changed(self, initial, data):
        return super().has_changed(initial or {}, data if data not in (None, "") else "{}")


_NESTING_SAFE_JSON = {models.JSONField: {"form_class": _NestingSafeJSONField}}


def _shortened(text: str, limit: int = 32) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


class _LLMConfigFilter(admin.RelatedFieldListFilter):
    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.title = "LLM config"  # not the field's "llm config"


class _OwnerScopeFilter(admin.SimpleListFilter):
    title = "scope"
    parameter_name = "scope"

    def lookups(self, request, model_admin):
        return [("org", "Organization-wide"), ("user", "A user's")]

    def queryset(self, request, queryset):
        if self.value() == "org":
            return queryset.filter(owner__isnull=True)
        if self.value() == "user":
            return queryset.filter(owner__isnull=False)
        return queryset
