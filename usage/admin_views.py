"""The admin's usage page: one month's usage per user, agent and day, a chart, a CSV export."""

from __future__ import annotations

import csv
from datetime import date

from django.http import HttpResponse
from django.template.response import TemplateResponse

from usage import selectors
from usage.services import month_start

CHART_WIDTH, CHART_HEIGHT = 760, 260
# The plot inside the chart: room on the left for the token axis, below for the days and the legend.
PLOT_LEFT, PLOT_TOP, PLOT_RIGHT, PLOT_BOTTOM = 64, 12, 750, 200
# Each day's bar is stacked from the four kinds of tokens, in these colours (the legend's).
SERIES = (
    ("input_tokens", "Input", "#417690"),
    ("output_tokens", "Output", "#79aec8"),
    ("cache_read_input_tokens", "Cache read", "#e3a33a"),
    ("cache_creation_input_tokens", "Cache write", "#9b6bb5"),
)
TICKS = 4  # token axis: 0 and four steps up to a round peak


def _month_param(value: str | None) -> date:
    try:
        year, month = (int(part) for part in (value or "").split("-"))
        return date(year, month, 1)
    except ValueError:
        return month_start()


def _round_up(value: float) -> int:
    """The smallest whole 1, 2, 2.5 or 5 × 10^n at or above `value` (an axis step that reads well)."""
    power = 1
    while True:
        for factor in (1, 2, 2.5, 5):
            candidate = power * factor
            if candidate >= value and candidate == int(candidate):
                return int(candidate)
        power *= 10


def _chart(per_day: list[dict]) -> dict:
    """Each day's tokens as a bar stacked by kind, with a token axis, a day axis and a legend: SVG coordinates."""
    totals = [sum(day[key] for key, _, _ in SERIES) for day in per_day]
    peak = max(totals, default=0)
    top = _round_up(peak / TICKS) * TICKS
    height = PLOT_BOTTOM - PLOT_TOP
    slot = (PLOT_RIGHT - PLOT_LEFT) / max(len(per_day), 1)
    bars = []
    for index, (day, total) in enumerate(zip(per_day, totals)):
        x, segments, base = PLOT_LEFT + index * slot, [], PLOT_BOTTOM
        for key, label, colour in SERIES:
            size = day[key] / top * height
            if size > 0:
                base -= size
                segments.append({"y": round(base, 1), "height": round(size, 1), "fill": colour,
                                 "title": f"{day['day']:%Y-%m-%d} {label.lower()}: {day[key]:,} tokens"})  # fmt: skip
        bars.append({
            "x": round(x + 1, 1), "width": round(slot - 2, 1), "segments": segments, "label": day["day"].day,
            "label_x": round(x + slot / 2, 1),
            "title": f"{day['day']:%Y-%m-%d}: {total:,} tokens, cost {_money(day['cost'])}",
        })  # fmt: skip
    ticks = [
        {"y": round(PLOT_BOTTOM - n / TICKS * height, 1), "label": f"{top * n // TICKS:,}"} for n in range(TICKS + 1)
    ]
    legend = [{"x": PLOT_LEFT + i * 120, "label": label, "fill": colour} for i, (_, label, colour) in enumerate(SERIES)]
    return {
        "width": CHART_WIDTH, "height": CHART_HEIGHT, "bars": bars, "peak": peak, "ticks": ticks, "legend": legend,
        "left": PLOT_LEFT, "right": PLOT_RIGHT, "top": PLOT_TOP, "bottom": PLOT_BOTTOM,
        "label_y": PLOT_BOTTOM + 14, "axis_title_y": PLOT_BOTTOM + 30, "legend_y": CHART_HEIGHT - 12,
        "middle_x": round((PLOT_LEFT + PLOT_RIGHT) / 2), "middle_y": round((PLOT_TOP + PLOT_BOTTOM) / 2),
    }  # fmt: skip


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
