"""Reading usage: a user's current period (the API) and the organization's month (the admin page)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone as dt_timezone
from typing import Any

from django.db.models import Count, DecimalField, Sum
from django.db.models.functions import TruncDate

from agents.models import Message
from usage.models import UsageCounter
from usage.services import USAGE_FIELDS, budget_limits, counters_of, month_start, next_month_start


def _sums() -> dict[str, Any]:
    sums: dict[str, Any] = {name: Sum(name, default=0) for name in USAGE_FIELDS}
    # SQL's SUM skips nulls and is null when all are: a group none of whose answers had a known price
    # costs null (unknown), not 0; otherwise the sum of the known costs.
    sums["cost"] = Sum("cost", output_field=DecimalField(max_digits=20, decimal_places=8))
    sums["messages"] = Count("pk")
    return sums


def _answers_in(month: date):
    start = datetime(month.year, month.month, 1, tzinfo=dt_timezone.utc)
    return Message.objects.filter(role=Message.Role.ASSISTANT, created_at__gte=start, created_at__lt=next_month_start(month))


def _remaining(limit, used):
    if not limit:
        return None
    return max(limit - used, 0)


def _known_cost(counted, user, month: date):
    """The counters hold 0 for unpriced answers: the cost is unknown (None) when no answer this month had a price."""
    if counted or _answers_in(month).filter(session__owner=user, cost__isnull=False).exists():
        return counted
    return None


def user_usage_period(user, *, at: datetime | None = None) -> dict[str, Any]:
    """The user's spending this calendar month (UTC), their budgets and what remains, per agent too."""
    month = month_start(at)
    spent, org = counters_of(user.pk, month)
    counter = UsageCounter.objects.filter(user=user, month=month).first()
    limits = budget_limits(user.pk)
    per_agent = (
        _answers_in(month)
        .filter(session__owner=user)
        .values("session__agent__slug", "session__agent__name")
        .annotate(**_sums())
        .order_by("-output_tokens", "session__agent__slug")
    )
    return {
        "period": {"start": datetime(month.year, month.month, 1, tzinfo=dt_timezone.utc), "resets_at": next_month_start(month)},
        "input_tokens": counter.input_tokens if counter else 0,
        "output_tokens": counter.output_tokens if counter else 0,
        "cache_read_input_tokens": counter.cache_read_input_tokens if counter else 0,
        "cache_creation_input_tokens": counter.cache_creation_input_tokens if counter else 0,
        "total_tokens": spent.tokens,
        "cost": _known_cost(spent.cost, user, month),
        "budget": {
            "tokens": limits.user_tokens or None,
            "cost": limits.user_cost or None,
            "source": limits.user_source,
            "remaining_tokens": _remaining(limits.user_tokens, spent.tokens),
            "remaining_cost": _remaining(limits.user_cost, spent.cost),
        },
        "organization_budget": {
            "tokens": limits.org_tokens or None,
            "cost": limits.org_cost or None,
            "remaining_tokens": _remaining(limits.org_tokens, org.tokens),
            "remaining_cost": _remaining(limits.org_cost, org.cost),
        },
        "agents": [
            {
                "agent": row["session__agent__slug"],
                "name": row["session__agent__name"],
                "messages": row["messages"],
                **{name: row[name] for name in USAGE_FIELDS},
                "cost": row["cost"],
            }
            for row in per_agent
        ],
    }


@dataclass
class MonthReport:
    month: date
    per_user: list[dict[str, Any]]
    per_agent: list[dict[str, Any]]
    per_day: list[dict[str, Any]]
    totals: dict[str, Any]


def month_report(month: date) -> MonthReport:
    """The organization's usage in `month`, from the stored messages (by the day they were written)."""
    answers = _answers_in(month)
    per_user = list(
        answers.values("session__owner_id", "session__owner__email").annotate(**_sums()).order_by("-output_tokens")
    )
    per_agent = list(
        answers.values("session__agent__slug", "session__agent__name").annotate(**_sums()).order_by("-output_tokens")
    )
    by_day = {row["day"]: row for row in answers.annotate(day=TruncDate("created_at", tzinfo=dt_timezone.utc))
              .values("day").annotate(**_sums()).order_by("day")}  # fmt: skip
    end = (next_month_start(month) - timedelta(days=1)).date()
    per_day = []
    day = month
    while day <= end:
        row = by_day.get(day) or {name: 0 for name in USAGE_FIELDS} | {"cost": None, "messages": 0}
        per_day.append({"day": day, **{k: row[k] for k in (*USAGE_FIELDS, "cost", "messages")}})
        day += timedelta(days=1)
    totals = answers.aggregate(**_sums())
    return MonthReport(month, per_user, per_agent, per_day, totals)


def month_rows_for_csv(month: date):
    """One row per day, user and agent."""
    return (
        _answers_in(month)
        .annotate(day=TruncDate("created_at", tzinfo=dt_timezone.utc))
        .values("day", "session__owner__email", "session__agent__slug")
        .annotate(**_sums())
        .order_by("day", "session__owner__email", "session__agent__slug")
    )
