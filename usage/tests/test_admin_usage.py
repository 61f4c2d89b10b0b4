"""The admin's usage page: per user, agent and day for a month, a server-drawn SVG chart, CSV."""

from __future__ import annotations

import csv
import io
from datetime import datetime, timezone as dt_timezone
from decimal import Decimal

import pytest

from agents import services
from agents.models import AIAgent, Message, UserAgentSession

pytestmark = pytest.mark.django_db


@pytest.fixture
def month_of_usage(user, other_user):
    agent = AIAgent.objects.create(name="Helper", slug="helper", system_prompt_text="x")
    for owner, day, tokens in ((user, 3, 100), (user, 5, 50), (other_user, 5, 10)):
        session = UserAgentSession.objects.create(owner=owner, agent=agent, title="t")
        message = services.message_append(session=session, role="assistant", content="a", input_tokens=tokens,
                                           output_tokens=tokens, cost=Decimal("0.01"))  # fmt: skip
        Message.objects.filter(pk=message.pk).update(created_at=datetime(2026, 10, day, 12, tzinfo=dt_timezone.utc))
    return agent


def test_the_page_shows_a_month_per_user_agent_and_day_with_a_chart(client, make_user, user, month_of_usage):
    client.force_login(make_user(is_staff=True))
    assert 'href="/admin/usage/"' in client.get("/admin/").content.decode()
    page = client.get("/admin/usage/", {"month": "2026-10"}).content.decode()
    assert "Usage in October 2026" in page
    assert '<svg id="usage-chart"' in page and page.count('<g class="conduit-day">') == 31  # one bar per day
    assert "2026-10-03: 200 tokens" in page and "2026-10-05: 120 tokens" in page
    assert user.email in page and "Helper (helper)" in page
    empty = client.get("/admin/usage/", {"month": "2026-09"}).content.decode()
    assert "No usage." in empty and empty.count('<g class="conduit-day">') == 30


def test_csv_has_one_row_per_day_user_and_agent(client, make_user, user, other_user, month_of_usage):
    client.force_login(make_user(is_staff=True))
    response = client.get("/admin/usage/", {"month": "2026-10", "format": "csv"})
    assert response["Content-Type"].startswith("text/csv")
    rows = list(csv.reader(io.StringIO(response.content.decode())))
    assert rows[0][:4] == ["day", "user", "agent", "messages"]
    assert [r[:6] for r in rows[1:]] == [
        ["2026-10-03", user.email, "helper", "1", "100", "100"],
        ["2026-10-05", user.email, "helper", "1", "50", "50"],
        ["2026-10-05", other_user.email, "helper", "1", "10", "10"],
    ]


def test_only_staff_see_it(client, user):
    client.force_login(user)
    assert client.get("/admin/usage/").status_code == 302  # to the admin login


def test_budgets_are_edited_in_admin_and_the_counters_only_read(client, make_user, user):
    from usage.models import Budget

    client.force_login(make_user(is_staff=True, is_superuser=True))
    assert client.get("/admin/usage/budget/add/").status_code == 200
    response = client.post("/admin/usage/budget/add/", {"user": "", "group": "", "monthly_tokens": "5000",
                                                         "monthly_cost": "", "note": "cap"})  # fmt: skip
    assert response.status_code == 302, response.content.decode()[:2000]
    second = client.post("/admin/usage/budget/add/", {"user": "", "group": "", "monthly_tokens": "1", "note": "again"})
    assert second.status_code == 200 and "already is an organization-wide budget" in second.content.decode()
    mine = client.post("/admin/usage/budget/add/", {"user": str(user.pk), "group": "", "monthly_tokens": "10", "note": ""})
    assert mine.status_code == 302
    assert {(b.scope, b.monthly_tokens) for b in Budget.objects.all()} == {("organization", 5000), ("user", 10)}
    assert client.get("/admin/usage/usagecounter/").status_code == 200
    assert client.get("/admin/usage/usagecounter/add/").status_code == 403


def test_unknown_cost_is_null_in_the_api_and_unknown_in_the_admin_never_zero(client, make_user, user):
    """Answers without a known price (cost null) add up to null, not "0.00000000"; once one has a price, the
    known costs are summed."""
    from rest_framework.test import APIClient

    from usage.services import usage_add

    agent = AIAgent.objects.create(name="Helper", slug="helper", system_prompt_text="x")
    session = UserAgentSession.objects.create(owner=user, agent=agent, title="t")
    services.message_append(session=session, role="assistant", content="a", input_tokens=7, output_tokens=3, cost=None)
    usage_add(user_id=user.pk, usage={"input_tokens": 7, "output_tokens": 3}, cost=None)
    api = APIClient()
    api.force_authenticate(user)
    body = api.get("/api/v1/usage").json()
    assert body["input_tokens"] == 7 and body["cost"] is None
    assert body["agents"][0]["cost"] is None
    staff = make_user(is_staff=True)
    client.force_login(staff)
    page = client.get("/admin/usage/").content.decode()
    assert "cost unknown" in page and "0.0000" not in page
    # One priced answer: the known part is summed.
    services.message_append(session=session, role="assistant", content="b", cost=Decimal("0.25"))
    usage_add(user_id=user.pk, usage={"input_tokens": 1}, cost=Decimal("0.25"))
    body = api.get("/api/v1/usage").json()
    assert Decimal(body["cost"]) == Decimal("0.25") and Decimal(body["agents"][0]["cost"]) == Decimal("0.25")


def test_the_chart_has_a_token_axis_a_day_axis_and_a_legend_of_stacked_kinds(client, make_user, month_of_usage):
    from usage.admin_views import _round_up

    client.force_login(make_user(is_staff=True))
    response = client.get("/admin/usage/", {"month": "2026-10"})
    chart = response.context["chart"]
    # Day 3: 100 in + 100 out = 200 tokens, the peak; the axis tops at a round 200 in four steps.
    assert [tick["label"] for tick in chart["ticks"]] == ["0", "50", "100", "150", "200"]
    day3 = chart["bars"][2]
    assert [part["fill"] for part in day3["segments"]] == ["#417690", "#79aec8"]  # input below output
    assert sum(part["height"] for part in day3["segments"]) == chart["bottom"] - chart["top"]
    assert chart["bars"][0]["segments"] == []  # no usage, no bar
    page = response.content.decode()
    assert 'id="usage-chart-token-axis"' in page and ">Tokens</text>" in page
    assert "Day of the month (UTC)</text>" in page
    legend = page.split('id="usage-chart-legend"')[1].split("</g>")[0]
    assert [label in legend for label in ("Input", "Output", "Cache read", "Cache write")] == [True] * 4
    assert [_round_up(n) for n in (0, 0.5, 3, 7, 11, 24, 130, 2600)] == [1, 1, 5, 10, 20, 25, 200, 5000]
