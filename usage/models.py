"""Usage counters and budgets.

`UsageCounter` holds what one user (or, with `user` null, the whole organization) spent in one
calendar month (UTC): it is updated atomically (F() expressions) whenever a message's usage is
stored, so a budget check reads two rows by their unique index instead of summing messages.
`Budget` rows override the BUDGET_USER_MONTHLY_* settings for one user or one group, or (neither
set) cap the whole organization.
"""

from __future__ import annotations

from django.conf import settings
from django.contrib.auth.models import Group
from django.core.exceptions import ValidationError
from django.core.validators import MinValueValidator
from django.db import models
from django.db.models import Q


class UsageCounter(models.Model):
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, null=True, blank=True, related_name="usage_counters",
        help_text="Empty: the whole organization (or an erased user's, see erased_as).",
    )  # fmt: skip
    # An erased user's counters keep their numbers under an anonymous marker (lifecycle.erase); the
    # organization's row is the one with neither a user nor a marker.
    erased_as = models.CharField(max_length=64, blank=True, default="")
    month = models.DateField(help_text="The first day of the calendar month (UTC).")
    input_tokens = models.BigIntegerField(default=0)
    output_tokens = models.BigIntegerField(default=0)
    cache_read_input_tokens = models.BigIntegerField(default=0)
    cache_creation_input_tokens = models.BigIntegerField(default=0)
    cost = models.DecimalField(max_digits=20, decimal_places=8, default=0)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-month", "user_id"]
        constraints = [
            models.UniqueConstraint(
                fields=["user", "month"], condition=Q(user__isnull=False), name="usage_counter_user_month_unique"
            ),
            models.UniqueConstraint(
                fields=["month"], condition=Q(user__isnull=True, erased_as=""), name="usage_counter_org_month_unique"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.user or self.erased_as or 'Organization'} {self.month:%Y-%m}"

    @property
    def total_tokens(self) -> int:
        """What token budgets count: every token the model read or wrote, cached or not."""
        return self.input_tokens + self.output_tokens + self.cache_read_input_tokens + self.cache_creation_input_tokens


class Budget(models.Model):
    """A monthly budget for one user, one group, or (neither) the whole organization."""

    user = models.OneToOneField(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, null=True, blank=True, related_name="budget"
    )
    group = models.OneToOneField(Group, on_delete=models.CASCADE, null=True, blank=True, related_name="budget")
    monthly_tokens = models.PositiveBigIntegerField(
        null=True, blank=True,
        help_text="Tokens per calendar month (UTC). 0: unlimited. Empty: the group's or the default "
        "(BUDGET_USER_MONTHLY_TOKENS); for the organization, no cap.",
    )  # fmt: skip
    monthly_cost = models.DecimalField(
        max_digits=16, decimal_places=4, null=True, blank=True, validators=[MinValueValidator(0)],
        help_text="Cost per calendar month, in the prices' currency. 0: unlimited. Empty: as for tokens.",
    )  # fmt: skip
    note = models.CharField(max_length=255, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["user_id", "group_id"]
        constraints = [
            models.CheckConstraint(
                condition=Q(user__isnull=True) | Q(group__isnull=True), name="usage_budget_user_or_group"
            ),
        ]

    def __str__(self) -> str:
        if self.user_id:
            return f"Budget of {self.user}"
        if self.group_id:
            return f"Budget of group {self.group}"
        return "Organization budget"

    @property
    def scope(self) -> str:
        return "user" if self.user_id else "group" if self.group_id else "organization"

    def clean(self) -> None:
        # One organization row (checked here, for admin; the budget check reads the oldest one).
        if self.user_id and self.group_id:
            raise ValidationError("A budget is for a user or for a group, not both.")
        if self.user_id is None and self.group_id is None:
            others = Budget.objects.filter(user__isnull=True, group__isnull=True).exclude(pk=self.pk)
            if others.exists():
                raise ValidationError("There already is an organization-wide budget; edit it.")
