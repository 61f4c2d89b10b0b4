from __future__ import annotations

import pytest

from agents.models import AIAgent, LLMProviderConfig
from assistant import runs
from assistant.tests.conftest import connect, frames_until
from config.testing.fake_anthropic import fake_anthropic_server


@pytest.mark.django_db(transaction=True)
async def test_an_organization_agent_without_a_config_never_runs_on_the_users_own_config(user, fake, settings):
    # Attack (issue 33, 9): a user's default config on their own endpoint received an organization
    # agent's instructions and tools, and the user's model drove them. Organization configs only.
    settings.ANTHROPIC_BASE_URL, settings.ANTHROPIC_API_KEY = fake.base_url, "sk-organization"
    with fake_anthropic_server() as users_endpoint:
        settings.OUTBOUND_ALLOWED_HOSTS = [users_endpoint.base_url.removeprefix("http://")]
        await LLMProviderConfig.objects.acreate(
            name="Mine", provider="anthropic", model="claude-mine", api_key="sk-user-own", owner=user, is_default=True,
            base_url=users_endpoint.base_url,
        )  # fmt: skip
        await AIAgent.objects.acreate(name="Org", slug="org-agent", system_prompt_text="Org secrets.", is_active=True)
        socket = await connect(user)
        await socket.send_json_to({"type": "start", "agent": "org-agent", "message": "hello"})
        frames = await frames_until(socket, "result", "error")
        await socket.disconnect()
        assert frames[-1]["type"] == "result", frames[-1]
        assert users_endpoint.requests == [], "the user's endpoint received the organization agent's turn"
    sent = fake.requests[0].headers
    assert len(fake.requests) == 1 and sent.get("x-api-key", sent.get("authorization")) in {
        "sk-organization", "Bearer sk-organization"
    }
    assert "Org secrets." in str(fake.requests[0].body["system"])


@pytest.mark.django_db
def test_a_prompt_variable_the_session_lacks_refuses_the_turn_with_its_name(user, settings):
    settings.ANTHROPIC_API_KEY = "sk-organization"
    AIAgent.objects.create(name="Vars", slug="vars", system_prompt_text="Speak {{ language }}.", is_active=True)
    with pytest.raises(runs.TurnRefused) as refused:
        runs.turn_begin(user=user, text="hello", agent_slug="vars")
    assert refused.value.code == "invalid" and "language" in refused.value.message


@pytest.mark.django_db
def test_an_agent_whose_model_has_no_key_is_refused_before_anything_is_stored(user, settings):
    settings.ANTHROPIC_API_KEY = ""
    AIAgent.objects.create(name="Keyless", slug="keyless", system_prompt_text="Hi.", is_active=True)
    with pytest.raises(runs.TurnRefused) as refused:
        runs.turn_begin(user=user, text="hello", agent_slug="keyless")
    assert refused.value.code == "not_configured" and "API key" in refused.value.message
    assert not user.agent_sessions.exists()
