"""The admin is branded Conduit and lands on a dashboard of counts, recent answers and failures."""

from __future__ import annotations

import pytest
from django.contrib import admin

from agents.models import AIAgent, Message, UserAgentSession
from config.admin_site import ConduitAdminSite

pytestmark = pytest.mark.django_db


def test_the_admin_site_is_conduits():
    assert isinstance(admin.site, ConduitAdminSite)


def test_the_dashboard_shows_counts_recent_answers_and_failures(client, make_user):
    staff = make_user(is_staff=True, is_superuser=True)
    client.force_login(staff)
    owner = make_user()
    agent = AIAgent.objects.create(name="Helper", slug="helper")
    session = UserAgentSession.objects.create(owner=owner, agent=agent, title="Quarterly numbers")
    Message.objects.create(session=session, seq=1, role="user", content=[{"type": "text", "text": "Hi"}])
    Message.objects.create(
        session=session, seq=2, role="assistant", content=[], status="complete", input_tokens=1234, output_tokens=56
    )
    Message.objects.create(
        session=session, seq=3, role="assistant", content=[], status="error",
        error_code="upstream_timeout", error_message="The model provider did not answer in time.",
    )  # fmt: skip

    page = client.get("/admin/")
    assert page.status_code == 200
    html = page.content.decode()
    assert "<title>Dashboard | Conduit admin</title>" in html
    assert "Conduit administration" in html and "Django administration" not in html
    dashboard = page.context["dashboard"]
    assert dict((label, n) for label, n, _ in dashboard.counts)["Organization agents"] == 1
    assert dashboard.last_day["answers"] == 2 and dashboard.last_day["failed"] == 1
    assert dashboard.last_day["input_tokens"] == 1234 and dashboard.last_day["users"] == 1
    assert [m.seq for m in dashboard.recent_turns] == [3, 2]
    assert [m.error_code for m in dashboard.recent_failures] == ["upstream_timeout"]
    assert dashboard.failures_by_code == [{"error_code": "upstream_timeout", "n": 1}]
    assert "Quarterly numbers" in html and "upstream_timeout × 1" in html
    assert "The model provider did not answer in time." in html
    assert 'href="/admin/agents/aiagent/"' in html  # the app list is still there, below


def test_a_non_staff_user_is_sent_to_the_login(client, make_user):
    client.force_login(make_user())
    assert client.get("/admin/").status_code == 302


def test_the_agent_cards_open_lists_of_what_they_count(client, make_user):
    client.force_login(make_user(is_staff=True, is_superuser=True))
    owner = make_user()
    AIAgent.objects.create(name="Org one", slug="org-one")
    AIAgent.objects.create(name="Org retired", slug="org-retired", is_active=False)
    AIAgent.objects.create(name="Mine one", slug="mine-one", owner=owner)
    cards = {label: (n, url) for label, n, url in client.get("/admin/").context["dashboard"].counts}
    expected = {"Organization agents": ["Org one"], "Users' agents": ["Mine one"]}
    assert cards["Organization agents"][1] != cards["Users' agents"][1]
    for label, names in expected.items():
        number, url = cards[label]
        listed = client.get(url)
        assert listed.status_code == 200, url
        shown = [agent.name for agent in listed.context["cl"].result_list]
        assert shown == names and number == len(names), label
    users = client.get(cards["Active users"][1])
    assert users.status_code == 200 and len(users.context["cl"].result_list) == cards["Active users"][0]
