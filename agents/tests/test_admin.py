"""Admin screens: every page loads for staff, and a staff user can build an agent in admin alone."""

from __future__ import annotations

import pytest
from django.contrib.messages import get_messages

from agents import services
from agents.models import (
    AIAgent,
    Integration,
    LLMProviderConfig,
    Message,
    PromptTemplate,
    PromptTemplateVersion,
    UserAgentSession,
)

ADDABLE = ["llmproviderconfig", "integration", "prompttemplate", "aiagent", "useragentsession", "message"]


@pytest.fixture
def one_of_each(user, make_llm_config, make_integration, make_prompt, make_agent, make_session):
    config = make_llm_config(None, api_key="sk-ant-api03-admin-test-key-0000")
    integration = make_integration(
        None, credentials={"token": "ghp_admin_test_token_0000"}, mcp_server={"command": "x"}
    )
    prompt = make_prompt(None)
    agent = make_agent(None, system_prompt=prompt, system_prompt_text="", llm_config=config, integrations=[integration])
    session = make_session(user, agent=agent)
    message = services.message_append(session=session, role="assistant", content="an answer", input_tokens=3)
    return {
        LLMProviderConfig: config,
        Integration: integration,
        PromptTemplate: prompt,
        PromptTemplateVersion: prompt.versions.get(),
        AIAgent: agent,
        UserAgentSession: session,
        Message: message,
    }


def test_every_changelist_and_change_form_loads(staff_client, one_of_each):
    for model, obj in one_of_each.items():
        name = model._meta.model_name
        changelist = staff_client.get(f"/admin/agents/{name}/")
        change = staff_client.get(f"/admin/agents/{name}/{obj.pk}/change/")
        searched = staff_client.get(f"/admin/agents/{name}/", {"q": "x"})

        assert changelist.status_code == 200, name
        assert change.status_code == 200, name
        assert searched.status_code == 200, name


@pytest.mark.parametrize("name", ADDABLE)
def test_every_add_form_loads(staff_client, name):
    assert staff_client.get(f"/admin/agents/{name}/add/").status_code == 200


def test_versions_are_written_by_saving_prompts_not_added_by_hand(staff_client):
    assert staff_client.get("/admin/agents/prompttemplateversion/add/").status_code == 403


def test_session_page_shows_its_messages(staff_client, one_of_each):
    session = one_of_each[UserAgentSession]

    page = staff_client.get(f"/admin/agents/useragentsession/{session.pk}/change/").content.decode()

    assert "an answer" in page


def test_staff_build_an_agent_with_prompt_and_llm_config_in_admin_alone(staff_client):
    config = staff_client.post(
        "/admin/agents/llmproviderconfig/add/",
        {
            "name": "Team key",
            "provider": "anthropic",
            "model": "claude-sonnet-4-5",
            "base_url": "",
            "api_key": "sk-ant-api03-typed-in-admin-0000",
            "max_tokens": "4096",
            "temperature": "0.5",
            "is_default": "on",
        },
    )
    assert config.status_code == 302, config.content.decode()[:2000]
    prompt = staff_client.post(
        "/admin/agents/prompttemplate/add/",
        {
            "name": "Reviewer",
            "slug": "reviewer",
            "description": "",
            "body": "Review {{ language }} code.",
            "tags": '["review"]',
            "visibility": "organization",
            "versions-TOTAL_FORMS": "0",
            "versions-INITIAL_FORMS": "0",
        },
    )
    assert prompt.status_code == 302, prompt.content.decode()[:2000]
    config_obj, prompt_obj = LLMProviderConfig.objects.get(), PromptTemplate.objects.get()
    agent = staff_client.post(
        "/admin/agents/aiagent/add/",
        {
            "name": "Reviewer",
            "slug": "reviewer",
            "description": "",
            "category": "engineering",
            "tags": '["review"]',
            "is_active": "on",
            "system_prompt": str(prompt_obj.pk),
            "system_prompt_text": "",
            "llm_config": str(config_obj.pk),
            "max_turns": "10",
            "allowed_tools": ["read_file"],
            "custom_properties_schema": '{"type": "object", "required": ["language"]}',
        },
    )
    assert agent.status_code == 302, agent.content.decode()[:3000]

    created = AIAgent.objects.get(slug="reviewer")
    assert created.owner is None and created.system_prompt == prompt_obj and created.llm_config == config_obj
    assert config_obj.api_key == "sk-ant-api03-typed-in-admin-0000" and config_obj.is_default
    assert prompt_obj.versions.count() == 1
    assert services.agent_system_prompt(agent=created, variables={"language": "Go"}) == "Review Go code."
    # Staff are told that sessions must give the prompt's variable, and how to make it optional.
    warnings = [str(m) for m in get_messages(agent.wsgi_request) if m.level_tag == "warning"]
    assert len(warnings) == 1 and warnings[0].startswith("“Reviewer”'s prompt needs language from each session")


def test_admin_keeps_a_users_objects_out_of_organization_agents(staff_client, user, make_integration, make_prompt):
    theirs = make_integration(user, mcp_server={"type": "http", "url": "https://mcp.example.com/"}, name="theirs")
    private = make_prompt(user, name="Their prompt")
    response = staff_client.post(
        "/admin/agents/aiagent/add/",
        {"name": "Org", "slug": "org", "description": "", "category": "", "tags": "[]", "is_active": "on",
         "system_prompt": str(private.pk), "system_prompt_text": "", "llm_config": "", "max_turns": "10",
         "custom_properties_schema": "{}", "integrations": [str(theirs.pk)]},
    )  # fmt: skip

    page = response.content.decode()
    assert response.status_code == 200
    assert "Not available to this agent&#x27;s owner: theirs" in page
    assert "Their prompt" in page and "not available to this agent" in page
    assert not AIAgent.objects.exists()


def test_saving_a_prompt_body_in_admin_adds_a_version(staff_client, make_prompt):
    prompt = make_prompt(None, body="first")

    response = staff_client.post(
        f"/admin/agents/prompttemplate/{prompt.pk}/change/",
        {
            "name": prompt.name,
            "slug": prompt.slug,
            "description": "",
            "body": "second",
            "tags": "[]",
            "visibility": "private",
            "versions-TOTAL_FORMS": "1",
            "versions-INITIAL_FORMS": "1",
        },
    )

    assert response.status_code == 302, response.content.decode()[:2000]
    prompt.refresh_from_db()
    assert prompt.version == 2
    assert list(prompt.versions.values_list("body", flat=True)) == ["second", "first"]


def test_a_blank_key_in_admin_keeps_the_current_one(staff_client, make_llm_config):
    config = make_llm_config(None, api_key="sk-ant-api03-keep-me-please-0000")

    response = staff_client.post(
        f"/admin/agents/llmproviderconfig/{config.pk}/change/",
        {"name": "renamed", "provider": "anthropic", "model": "", "base_url": "", "api_key": "",
         "max_tokens": "4096", "temperature": "1.0"},
    )

    assert response.status_code == 302, response.content.decode()[:2000]
    config.refresh_from_db()
    assert (config.name, config.api_key) == ("renamed", "sk-ant-api03-keep-me-please-0000")


def test_making_a_config_default_in_admin_moves_the_default(staff_client, make_llm_config):
    old = make_llm_config(None, is_default=True)
    new = make_llm_config(None)

    response = staff_client.post(
        f"/admin/agents/llmproviderconfig/{new.pk}/change/",
        {"name": new.name, "provider": "anthropic", "model": "", "base_url": "", "api_key": "",
         "max_tokens": "4096", "temperature": "1.0", "is_default": "on"},
    )

    assert response.status_code == 302, response.content.decode()[:2000]
    old.refresh_from_db()
    new.refresh_from_db()
    assert new.is_default and not old.is_default


def test_admin_names_a_bad_mcp_definition(staff_client):
    response = staff_client.post(
        "/admin/agents/integration/add/",
        {"name": "", "provider": "github", "auth_type": "pat", "credentials": "", "is_active": "on",
         "mcp_server": '{"command": "npx", "args": "not-a-list"}'},
    )

    assert response.status_code == 200
    assert "args: must be a list of strings." in response.content.decode()


def test_admin_keeps_stdio_servers_organization_wide(staff_client, user):
    data = {"name": "", "provider": "custom", "auth_type": "pat", "credentials": "", "is_active": "on",
            "mcp_server": '{"command": "sh", "args": ["-c", "id"]}'}  # fmt: skip

    for_a_user = staff_client.post("/admin/agents/integration/add/", {**data, "owner": user.pk})
    for_everyone = staff_client.post("/admin/agents/integration/add/", data)

    assert for_a_user.status_code == 200
    assert "Only staff can define stdio MCP servers" in for_a_user.content.decode()
    assert for_everyone.status_code == 302
    assert list(Integration.objects.values_list("owner", flat=True)) == [None]


def test_admin_checks_session_custom_properties_against_the_agents_schema(staff_client, user, make_agent):
    agent = make_agent(None, custom_properties_schema={"type": "object", "required": ["project_key"]})

    response = staff_client.post(
        "/admin/agents/useragentsession/add/",
        {"owner": str(user.pk), "agent": str(agent.pk), "title": "t", "custom_properties": "{}", "is_active": "on",
         "messages-TOTAL_FORMS": "0", "messages-INITIAL_FORMS": "0"},
    )

    assert response.status_code == 200
    assert "&quot;project_key&quot; is a required property" in response.content.decode()


def test_the_agent_forms_schema_box_is_empty_not_null_and_an_untouched_one_is_no_change(staff_client, make_agent):
    import re

    def schema_box(html: str) -> str:
        return re.search(r'<textarea name="custom_properties_schema"[^>]*>(.*?)</textarea>', html, re.S).group(1)

    assert schema_box(staff_client.get("/admin/agents/aiagent/add/").content.decode()).strip() == ""
    agent = make_agent(None, custom_properties_schema={"type": "object"})
    assert schema_box(staff_client.get(f"/admin/agents/aiagent/{agent.pk}/change/").content.decode()).strip() == (
        "{&quot;type&quot;: &quot;object&quot;}"
    )
    plain = make_agent(None)
    from agents.admin import AIAgentForm

    form = AIAgentForm(instance=plain, data={"custom_properties_schema": ""})
    assert "custom_properties_schema" not in form.changed_data
    form.is_valid()
    assert form.cleaned_data["custom_properties_schema"] == {}
