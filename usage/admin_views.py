"""The admin's usage page: one month's usage per user, agent and day, a chart, a CSV export."""

from __future__ import annotations

import csv
from datetime import date

from django.http import HttpResponse
from django.template.response import TemplateResponse

from usage import selectors
from usage.services import month_start

CHART_WIDTH, CHART_HEIGHT, CHART_TOP = 760, 220, 20


def _month_param(value: str | None) -> date:
    try:
        year, month = (int(part) for part in (value or "").split("-"))
        return date(year, month, 1)
    except ValueError:
        return month_start()


def _chart(per_day: list[dict]) -> dict:
    """Bars of each day's tokens (input + output + cache), as SVG coordinates."""
    totals = [sum(d[k] for k in ("input_tokens", "output_tokens", "cache_read_input_tokens",
                                 "cache_creation_input_tokens")) for d in per_day]  # fmt: skip
    peak = max(totals, default=0) or 1
    slot = CHART_WIDTH / max(len(per_day), 1)
    usable = CHART_HEIGHT - CHART_TOP - 20
    bars = []
    for index, (day, total) in enumerate(zip(per_day, totals)):
        height = round(total / peak * usable, 1)
        bars.append({
            "x": round(index * slot + 1, 1), "y": round(CHART_TOP + usable - height, 1), "width": round(slot - 2, 1),
            "height": height, "label": day["day"].day, "label_x": round(index * slot + slot / 2, 1),
            "title": f"{day['day']:%Y-%m-%d}: {total:,} tokens, cost {_money(day['cost'])}",
        })  # fmt: skip
    return {"width": CHART_WIDTH, "height": CHART_HEIGHT, "bars": bars, "peak": max(totals, default=0),
            "label_y": CHART_HEIGHT - 5}  # fmt: skip


def _money(cost) -> str:
    return "unknown" if cost is None else f"{cost:.4f}"


def usage_report(request, admin_site):
    month = _month_param(request.GET.get("month"))
    if request.GET.get("format") == "csv":
        response = HttpResponse(content_type="text/csv; charset=utf-8")
        response["Content-Disposition"] = f'attachment; filename="usage-{month:%Y-%m}.csv"'
        writer = csv.writer(response)
        writer.writerow(["day", "user", "agent", "messages", "input_tokens", "output_tokens",
                         "cache_read_input_tokens", "cache_creation_input_tokens", "cost"])  # fmt: skip
        for row in selectors.month_rows_for_csv(month):
            writer.writerow([row["day"], row["session__owner__email"], row["session__agent__slug"], row["messages"],
                             row["input_tokens"], row["output_tokens"], row["cache_read_input_tokens"],
                             row["cache_creation_input_tokens"], row["cost"]])  # fmt: skip
        return response
    report = selectors.month_report(month)
    previous = date(month.year - 1, 12, 1) if month.month == 1 else date(month.year, month.month - 1, 1)
    following = date(month.year + 1, 1, 1) if month.month == 12 else date(month.year, month.month + 1, 1)
    context = {
        **admin_site.each_context(request),
        "title": f"Usage in {month:%B %Y}",
        "report": report,
        "chart": _chart(report.per_day),
        "month_param": f"{month:%Y-%m}",
        "previous_month": f"{previous:%Y-%m}",
        "next_month": f"{following:%Y-%m}",
    }
    return TemplateResponse(request, "admin/usage/report.html", context)
