from __future__ import annotations

import pytest

from agents.models import AIAgent, LLMProviderConfig
from assistant import runs

pytestmark = pytest.mark.django_db


def test_an_organization_agent_without_a_config_uses_the_users_default_config(user):
    LLMProviderConfig.objects.create(
        name="Mine", provider="anthropic", model="claude-mine", api_key="sk-user-own", owner=user, is_default=True
    )
    AIAgent.objects.create(name="Org", slug="org-agent", system_prompt_text="Hi.", is_active=True)
    plan = runs.turn_begin(user=user, text="hello", agent_slug="org-agent")
    assert (plan.request.model.api_key, plan.request.model.model) == ("sk-user-own", "claude-mine")


def test_a_prompt_variable_the_session_lacks_refuses_the_turn_with_its_name(user):
    AIAgent.objects.create(name="Vars", slug="vars", system_prompt_text="Speak {{ language }}.", is_active=True)
    with pytest.raises(runs.TurnRefused) as refused:
        runs.turn_begin(user=user, text="hello", agent_slug="vars")
    assert refused.value.code == "invalid" and "language" in refused.value.message
