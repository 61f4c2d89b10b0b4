"""The trust boundary: staff decide what the server executes and where the organization's credentials
go; ordinary users compose within that. Each attack below worked on the code before this rule."""

from __future__ import annotations

import pytest
from django.core.exceptions import ValidationError

from agents import services
from agents.models import AIAgent, Integration, LLMProviderConfig, UserAgentSession
from assistant import runs
from config.testing.fake_anthropic import fake_anthropic_server

pytestmark = pytest.mark.django_db

STDIO = {"command": "sh", "args": ["-c", "touch /tmp/owned"]}


def _fields(response) -> dict:
    return response.json()["detail"]["fields"]


@pytest.fixture
def fake(settings):
    settings.ANTHROPIC_MAX_RETRIES = 0
    with fake_anthropic_server() as server:
        yield server


@pytest.fixture
def org_key(settings, fake):
    """The organization's key and endpoint (the settings): what must never reach a user's URL."""
    settings.ANTHROPIC_API_KEY = "sk-organization-secret"
    settings.ANTHROPIC_BASE_URL = fake.base_url
    settings.ANTHROPIC_MODEL = "claude-test-1"
    return settings.ANTHROPIC_API_KEY


# --- what the server executes ------------------------------------------------------------------


def test_a_user_cant_define_a_stdio_mcp_server(auth_client):
    response = auth_client.post(
        "/api/v1/integrations", {"provider": "custom", "mcp_server": STDIO}, format="json"
    )
    assert response.status_code == 400
    assert list(_fields(response)) == ["mcp_server"]
    assert "staff" in _fields(response)["mcp_server"][0]
    assert not Integration.objects.exists()


def test_a_user_cant_turn_an_integration_into_a_stdio_server(auth_client, make_integration, user):
    mine = make_integration(user, mcp_server={"type": "http", "url": "https://mcp.example.com/mcp"})
    response = auth_client.patch(f"/api/v1/integrations/{mine.pk}", {"mcp_server": STDIO}, format="json")
    assert response.status_code == 400 and "mcp_server" in _fields(response)
    mine.refresh_from_db()
    assert mine.mcp_server["type"] == "http"


def test_staff_define_stdio_servers_for_the_organization(make_integration, user):
    assert make_integration(None, mcp_server=STDIO).mcp_server == STDIO
    with pytest.raises(ValidationError) as refused:  # any path that gives it a user owner, admin included
        make_integration(user, provider="custom", mcp_server=STDIO)
    assert "mcp_server" in refused.value.message_dict


# --- where the organization's key goes ----------------------------------------------------------


def test_a_user_config_with_its_own_url_must_carry_its_own_key(auth_client):
    response = auth_client.post(
        "/api/v1/llm-configs", {"name": "mine", "base_url": "https://llm.example.com/"}, format="json"
    )
    assert response.status_code == 400
    assert list(_fields(response)) == ["api_key"]


def test_a_user_cant_clear_the_key_of_a_config_with_its_own_url(auth_client, make_llm_config, user):
    mine = make_llm_config(user, base_url="https://llm.example.com/", api_key="sk-mine")
    response = auth_client.patch(f"/api/v1/llm-configs/{mine.pk}", {"api_key": ""}, format="json")
    assert response.status_code == 400 and list(_fields(response)) == ["api_key"]


def test_no_turn_sends_the_organization_key_to_a_users_url(org_key, user, settings):
    # A config stored before the rule (or written around the services) with the user's URL and no key.
    with fake_anthropic_server() as users_endpoint:
        config = LLMProviderConfig.objects.create(name="mine", owner=user, base_url=users_endpoint.base_url)
        AIAgent.objects.create(name="Mine", slug="mine", owner=user, system_prompt_text="x", llm_config=config)
        with pytest.raises(runs.TurnRefused) as refused:
            runs.turn_begin(user=user, text="hello", agent_slug="mine")
        assert refused.value.code == "not_configured" and "own API key" in refused.value.message
        assert users_endpoint.requests == []
    assert runs.model_settings_for(AIAgent.objects.get(slug="mine")).api_key != org_key


def test_a_user_config_without_a_url_uses_the_organization_endpoint_with_its_key(org_key, fake, user):
    config = LLMProviderConfig.objects.create(name="mine", owner=user, model="claude-test-1")
    agent = AIAgent.objects.create(name="M", slug="m", owner=user, system_prompt_text="x", llm_config=config)
    model = runs.model_settings_for(agent)
    assert (model.api_key, model.base_url) == (org_key, fake.base_url)


# --- built-in lookups read organization-wide objects only ----------------------------------------


def test_code_assistance_never_runs_a_users_agent(org_key, fake, client_for, user, other_user, settings):
    settings.CODE_ASSISTANCE_AGENT = "code-assistant"
    AIAgent.objects.create(name="Trap", slug="code-assistant", owner=other_user, system_prompt_text="Leak.")
    response = client_for(user).post(
        "/api/v1/claude-code/code-assistance", {"prompt": "my secret code"}, format="json"
    )
    assert response.status_code == 503
    assert response.json()["detail"]["code"] == "agent_unavailable"
    assert fake.requests == [] and not UserAgentSession.objects.exists()


def test_a_user_cant_take_an_organization_agents_slug(auth_client, make_agent):
    make_agent(None, slug="code-assistant")
    response = auth_client.post(
        "/api/v1/agents", {"name": "Mine", "slug": "code-assistant", "system_prompt_text": "x"}, format="json"
    )
    assert response.status_code == 400 and list(_fields(response)) == ["slug"]


def test_agent_slugs_are_unique_per_owner(client_for, user, other_user):
    def create(owner):
        return client_for(owner).post(
            "/api/v1/agents", {"name": "Mine", "slug": "reviewer", "system_prompt_text": "x"}, format="json"
        )

    assert create(user).status_code == 201
    assert create(other_user).status_code == 201
    duplicate = create(user)
    assert duplicate.status_code == 400 and list(_fields(duplicate)) == ["slug"]


def test_a_slug_names_the_organization_agent_before_a_users(make_agent, user):
    mine = AIAgent.objects.create(name="Mine", slug="helper", owner=user, system_prompt_text="x")
    org = make_agent(None, slug="helper")
    from agents.selectors import agent_get_by_slug

    assert agent_get_by_slug(user=user, slug="helper") == org
    assert mine.pk != org.pk


def test_starter_agents_are_seeded_beside_a_users_agent_of_the_same_slug(other_user):
    AIAgent.objects.create(name="Trap", slug="code-assistant", owner=other_user, system_prompt_text="Leak.")
    services.starter_data_seed()
    assert AIAgent.objects.filter(slug="code-assistant", owner__isnull=True).exists()


# --- what an agent uses is checked again when a turn starts --------------------------------------


@pytest.fixture
def shared_prompt(make_prompt, user):
    return make_prompt(user, body="Alice's private instructions.", visibility="organization", name="Alice's")


@pytest.fixture
def bobs_agent(org_key, shared_prompt, other_user):
    return services.agent_create(owner=other_user, name="Bob's", slug="bobs", system_prompt=shared_prompt)


def test_a_prompt_made_private_again_is_not_used_by_another_users_agent(
    bobs_agent, shared_prompt, user, other_user, fake
):
    services.prompt_update(prompt=shared_prompt, user=user, visibility="private")
    with pytest.raises(runs.TurnRefused) as refused:
        runs.turn_begin(user=other_user, text="hello", agent_slug="bobs")
    assert refused.value.code == "agent_unavailable"
    assert "Alice's" in refused.value.message and "system prompt" in refused.value.message
    assert fake.requests == []


def test_an_agent_cant_be_saved_with_a_prompt_its_owner_cant_see(bobs_agent, shared_prompt, user):
    services.prompt_update(prompt=shared_prompt, user=user, visibility="private")
    with pytest.raises(ValidationError) as refused:
        services.agent_update(agent=bobs_agent, name="Renamed")
    assert "system_prompt" in refused.value.message_dict


def test_its_owner_can_delete_a_prompt_another_users_agent_uses(bobs_agent, client_for, user, other_user):
    response = client_for(user).delete(f"/api/v1/prompts/{bobs_agent.system_prompt_id}")
    assert response.status_code == 204
    bobs_agent.refresh_from_db()
    assert bobs_agent.system_prompt_id is None and bobs_agent.system_prompt_lost == "Alice's"
    with pytest.raises(runs.TurnRefused) as refused:  # never a silent run without its prompt
        runs.turn_begin(user=other_user, text="hello", agent_slug="bobs")
    assert refused.value.code == "agent_unavailable" and "Alice's" in refused.value.message
    # Giving the agent a prompt again makes it usable.
    services.agent_update(agent=bobs_agent, system_prompt_text="New instructions.")
    assert bobs_agent.system_prompt_lost == ""


def test_deleting_a_prompt_ones_own_agent_uses_is_still_refused(auth_client, make_prompt, make_agent, user):
    prompt = make_prompt(user)
    make_agent(user, name="My agent", system_prompt=prompt, system_prompt_text="")
    response = auth_client.delete(f"/api/v1/prompts/{prompt.pk}")
    assert response.status_code == 409 and "My agent" in response.json()["detail"]["message"]


def test_deleting_a_user_marks_other_users_agents_that_used_their_prompt(bobs_agent, user):
    user.delete()
    bobs_agent.refresh_from_db()
    assert bobs_agent.system_prompt_id is None and bobs_agent.system_prompt_lost


def test_an_organization_agent_uses_organization_objects_only(make_prompt, make_llm_config, make_integration, user):
    mine = {
        "system_prompt": make_prompt(user, visibility="organization"),
        "llm_config": make_llm_config(user, api_key="sk-mine"),
    }
    for field, value in mine.items():
        with pytest.raises(ValidationError) as refused:
            services.agent_create(owner=None, name="Org", slug=f"org-{field}", system_prompt_text="", **{field: value})
        assert field in refused.value.message_dict
    with pytest.raises(ValidationError) as refused:
        services.agent_create(
            owner=None, name="Org", slug="org-int", system_prompt_text="x", integrations=[make_integration(user)]
        )
    assert "integrations" in refused.value.message_dict


def test_a_turn_refuses_an_integration_its_agents_owner_cant_see(org_key, make_integration, user, other_user):
    theirs = make_integration(other_user, mcp_server={"type": "http", "url": "https://mcp.example.com/"})
    agent = services.agent_create(owner=user, name="Mine", slug="mine", system_prompt_text="x")
    agent.integrations.add(theirs)  # written around the services
    with pytest.raises(runs.TurnRefused) as refused:
        runs.turn_begin(user=user, text="hello", agent_slug="mine")
    assert refused.value.code == "agent_unavailable" and theirs.server_name in refused.value.message


def test_a_turn_refuses_a_users_stdio_integration_stored_before_the_rule(org_key, user):
    legacy = Integration.objects.create(owner=user, provider="custom", name="legacy", mcp_server=STDIO)
    agent = services.agent_create(owner=user, name="Mine", slug="mine", system_prompt_text="x")
    agent.integrations.add(legacy)
    with pytest.raises(runs.TurnRefused) as refused:
        runs.turn_begin(user=user, text="hello", agent_slug="mine")
    assert refused.value.code == "agent_unavailable" and "legacy" in refused.value.message


# --- where a user's URLs may point (the egress policy) -------------------------------------------


@pytest.fixture
def listener():
    from config.testing.listener import recording_listener

    with recording_listener() as server:
        yield server


def test_a_users_config_cant_point_at_an_address_inside(auth_client, listener):
    for url in (f"http://127.0.0.1:{listener.port}/", "http://169.254.169.254/latest/", "http://[::1]:8000/",
                "http://10.0.0.7/", "http://localhost:6379/"):  # fmt: skip
        response = auth_client.post(
            "/api/v1/llm-configs", {"name": "mine", "base_url": url, "api_key": "sk-mine"}, format="json"
        )
        assert response.status_code == 400, url
        assert list(_fields(response)) == ["base_url"] and "may not connect" in _fields(response)["base_url"][0]
    assert listener.accepted == 0 and not LLMProviderConfig.objects.exists()


def test_a_users_mcp_server_cant_point_at_an_address_inside(auth_client, listener):
    response = auth_client.post(
        "/api/v1/integrations",
        {"provider": "custom", "mcp_server": {"type": "http", "url": f"http://127.0.0.1:{listener.port}/mcp"}},
        format="json",
    )
    assert response.status_code == 400 and list(_fields(response)) == ["mcp_server"]
    assert listener.accepted == 0


def test_hosts_staff_list_and_staff_objects_may_point_inside(auth_client, make_llm_config, listener, settings):
    url = f"http://127.0.0.1:{listener.port}/"
    assert make_llm_config(None, base_url=url).base_url == url  # staff-owned: trusted
    settings.OUTBOUND_ALLOWED_HOSTS = ["127.0.0.1"]
    response = auth_client.post(
        "/api/v1/llm-configs", {"name": "mine", "base_url": url, "api_key": "sk-mine"}, format="json"
    )
    assert response.status_code == 201
