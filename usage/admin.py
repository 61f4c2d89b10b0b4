from django.contrib import admin

from usage.models import Budget, UsageCounter


@admin.register(Budget)
class BudgetAdmin(admin.ModelAdmin):
    list_display = ("__str__", "monthly_tokens", "monthly_cost", "note", "updated_at")
    list_select_related = ("user", "group")
    autocomplete_fields = ("user",)
    search_fields = ("user__email", "group__name", "note")
    fieldsets = [
        (None, {"fields": ("user", "group"), "description": "A user, a group, or neither: the organization-wide cap."}),
        ("Monthly limits", {"fields": ("monthly_tokens", "monthly_cost", "note")}),
    ]


@admin.register(UsageCounter)
class UsageCounterAdmin(admin.ModelAdmin):
    """Read-only: the counters are what budgets are checked against (see the usage page)."""

    list_display = ("__str__", "input_tokens", "output_tokens", "cache_read_input_tokens",
                    "cache_creation_input_tokens", "cost", "updated_at")  # fmt: skip
    list_filter = ("month",)
    search_fields = ("user__email",)
    list_select_related = ("user",)

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False
