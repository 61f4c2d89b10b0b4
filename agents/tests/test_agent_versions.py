"""Agent versions: every save records one (what changed, who); revert in admin restores a version
and records a new one; sessions record the version they ran with."""

from __future__ import annotations

import pytest

from agents import services
from agents.models import AIAgentVersion, UserAgentSession
from assistant import runs
from assistant.tests.conftest import agent, fake, token_for  # noqa: F401  (fixtures)

pytestmark = pytest.mark.django_db(transaction=True)


def test_api_edits_record_versions_with_what_changed_and_who(api_client, user):
    api_client.credentials(HTTP_AUTHORIZATION=f"Bearer {token_for(user)}")
    created = api_client.post("/api/v1/agents", {"name": "Mine", "slug": "mine", "system_prompt_text": "One."},
                              format="json")  # fmt: skip
    assert created.status_code == 201, created.content
    agent_id = created.json()["id"]
    assert api_client.patch(f"/api/v1/agents/{agent_id}", {"system_prompt_text": "Two."}, format="json").status_code == 200
    api_client.patch(f"/api/v1/agents/{agent_id}", {"system_prompt_text": "Two."}, format="json")  # no change

    versions = list(AIAgentVersion.objects.filter(agent_id=agent_id).order_by("version"))
    assert [v.version for v in versions] == [1, 2]
    assert versions[1].changed_fields == ["system_prompt_text"]
    assert versions[0].snapshot["system_prompt_text"] == "One." and versions[1].snapshot["system_prompt_text"] == "Two."
    assert all(v.created_by == user for v in versions)


def test_an_agent_is_reverted_in_admin(client, make_user):
    staff = make_user(is_staff=True, is_superuser=True)
    client.force_login(staff)
    agent = services.agent_create(owner=None, name="Helper", slug="helper", system_prompt_text="Be kind.", max_turns=5)
    services.agent_update(agent=agent, system_prompt_text="Be terse.", max_turns=9)
    first = agent.versions.get(version=1)

    response = client.post("/admin/agents/aiagentversion/", {"action": "revert_to_version", "_selected_action": [first.pk]})
    assert response.status_code == 302

    agent.refresh_from_db()
    assert (agent.system_prompt_text, agent.max_turns) == ("Be kind.", 5)
    latest = agent.versions.order_by("-version").first()
    assert latest.version == 3 and latest.note == "Reverted to version 1" and latest.created_by == staff
    assert set(latest.changed_fields) == {"system_prompt_text", "max_turns"}
    assert client.get(f"/admin/agents/aiagentversion/{first.pk}/change/").status_code == 200
    assert client.get("/admin/agents/aiagentversion/add/").status_code == 403


async def test_a_session_records_the_agent_version_it_ran_with(user, agent, fake):
    from asgiref.sync import sync_to_async

    plan = await sync_to_async(runs.turn_begin)(user=user, text="hi", agent_slug="helper")
    await runs.TurnRunner(plan).start()
    session = await UserAgentSession.objects.select_related("agent_version").aget(pk=plan.session_id)
    assert session.agent_version is not None and session.agent_version.version == 1

    agent.system_prompt_text = "Changed."
    await sync_to_async(services.agent_save)(agent=agent)
    plan = await sync_to_async(runs.turn_begin)(user=user, text="again", session_id=plan.session_id)
    await runs.TurnRunner(plan).start()
    session = await UserAgentSession.objects.select_related("agent_version").aget(pk=plan.session_id)
    assert session.agent_version.version == 2
    assert session.agent_version.snapshot["system_prompt_text"] == "Changed."
