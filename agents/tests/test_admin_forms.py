"""The admin's forms as a staff member meets them: tags typed as words, allowed tools as checkboxes
plus other names, the schema as validated JSON with an example, one API-key field showing the
current key, clean labels, organization prompts visible to the organization by default."""

from __future__ import annotations

import pytest

from agents.models import AIAgent, PromptTemplate
from assistant.tools.workspace import TOOLS


@pytest.fixture
def staff_client(client, make_user):
    client.force_login(make_user(is_staff=True, is_superuser=True))
    return client


def agent_data(**fields) -> dict:
    return {
        "name": "Helper", "slug": "helper", "description": "", "category": "", "tags": "", "is_active": "on",
        "system_prompt": "", "system_prompt_text": "You help.", "llm_config": "", "max_turns": "10",
        "custom_properties_schema": "", **fields,
    }  # fmt: skip


def test_tags_and_tools_typed_as_words_and_checkboxes_are_stored_as_lists(staff_client):
    response = staff_client.post(
        "/admin/agents/aiagent/add/",
        agent_data(
            tags="demo, friendly,\ncode-review",
            allowed_tools=["read_file", "grep"],
            allowed_tools_other="github__*, notes__add",
        ),
    )

    assert response.status_code == 302, response.content.decode()[:3000]
    agent = AIAgent.objects.get(slug="helper")
    assert agent.tags == ["demo", "friendly", "code-review"]
    assert agent.allowed_tools == ["read_file", "grep", "github__*", "notes__add"]
    assert agent.custom_properties_schema == {}


def test_an_agents_lists_round_trip_through_its_change_form(staff_client, make_agent):
    agent = make_agent(None, tags=["demo", "friendly"], allowed_tools=["notes__*", "read_file", "Read"])

    page = staff_client.get(f"/admin/agents/aiagent/{agent.pk}/change/")
    form = page.context["adminform"].form
    html = page.content.decode()

    assert 'name="tags" value="demo, friendly"' in html
    assert form["allowed_tools"].value() == ["read_file"]
    assert 'name="allowed_tools_other" value="notes__*, Read"' in html
    checked = [name for name in TOOLS if f'value="{name}"' in html]
    assert checked == list(TOOLS)  # every known tool is offered
    # Saved again unchanged: the same lists, in the stored order.
    data = agent_data(name=agent.name, slug=agent.slug, tags="demo, friendly", allowed_tools=["read_file"],
                      allowed_tools_other="notes__*, Read", custom_properties_schema="{}")  # fmt: skip
    response = staff_client.post(f"/admin/agents/aiagent/{agent.pk}/change/", data)
    assert response.status_code == 302, response.content.decode()[:3000]
    agent.refresh_from_db()
    assert (agent.tags, agent.allowed_tools) == (["demo", "friendly"], ["notes__*", "read_file", "Read"])


def test_bad_tags_tools_and_schema_are_named_on_their_fields(staff_client):
    response = staff_client.post(
        "/admin/agents/aiagent/add/",
        agent_data(
            tags="demo, Not A Tag",
            allowed_tools=["format_disk"],
            allowed_tools_other="ok_tool, bad tool!",
            custom_properties_schema="{type: object}",
        ),
    )

    assert response.status_code == 200
    errors = response.context["adminform"].form.errors
    assert set(errors) == {"tags", "allowed_tools", "allowed_tools_other", "custom_properties_schema"}
    assert errors["tags"] == [
        "Tag 2 ('Not A Tag') must be 1-50 lower-case letters, digits or _ . + - starting with a letter or digit."
    ]
    assert "format_disk is not one of the available choices" in errors["allowed_tools"][0]
    assert errors["allowed_tools_other"][0].startswith("Allowed tools must be a list of tool names")
    assert errors["custom_properties_schema"][0].startswith('Enter valid JSON, for example {"type": "object"')
    assert not AIAgent.objects.exists()


def test_a_schema_that_is_json_but_not_a_json_schema_is_named(staff_client):
    response = staff_client.post(
        "/admin/agents/aiagent/add/", agent_data(custom_properties_schema='{"type": "no-such-type"}')
    )

    assert response.status_code == 200
    errors = response.context["adminform"].form.errors
    assert list(errors) == ["custom_properties_schema"]
    assert errors["custom_properties_schema"][0].startswith("Not a valid JSON Schema at")


def test_the_agent_form_has_clean_labels_and_a_schema_example(staff_client):
    html = staff_client.get("/admin/agents/aiagent/add/").content.decode()

    assert ">LLM config:</label>" in html and "Llm config" not in html
    assert "Comma-separated lower-case words" in html
    assert 'Example: {"type": "object", "properties": {"team"' in html
    assert 'type="checkbox" name="allowed_tools" value="read_file"' in html


def test_the_llm_config_form_shows_one_api_key_field_with_the_current_key(staff_client, make_llm_config):
    config = make_llm_config(None, api_key="sk-ant-api03-shown-masked-1234")

    html = staff_client.get(f"/admin/agents/llmproviderconfig/{config.pk}/change/").content.decode()
    added = staff_client.get("/admin/agents/llmproviderconfig/add/").content.decode()

    assert ">API key:</label>" in html and ">Base URL:</label>" in html
    assert "Api key" not in html and "Base url" not in html
    assert html.count("API key:") == 1  # the input only: no separate read-only display
    assert "Current: sk-ant…1234." in html and "sk-ant-api03-shown-masked-1234" not in html
    assert "None stored." in added


def test_the_integration_form_shows_the_current_credentials_masked_in_one_field(staff_client, make_integration):
    integration = make_integration(None, credentials="ghp_a_long_enough_token_5678")

    html = staff_client.get(f"/admin/agents/integration/{integration.pk}/change/").content.decode()

    assert html.count("Credentials:") == 1 and "Current: ghp_a…5678." in html
    assert ">MCP server:</label>" in html and "ghp_a_long_enough_token_5678" not in html


def test_a_users_credentials_shown_to_staff_are_escaped(staff_client, user, make_integration):
    # Help texts are HTML in the admin; the keys of a user's credentials object are shown in full.
    attack = '<img src=x onerror="alert(1)">'
    integration = make_integration(user, credentials={attack: "a-long-enough-secret-value-0000"})

    html = staff_client.get(f"/admin/agents/integration/{integration.pk}/change/").content.decode()

    assert attack not in html
    assert "Current: {&quot;&lt;img src=x onerror=\\&quot;alert(1)\\&quot;&gt;&quot;" in html


def test_a_new_prompt_without_owner_defaults_to_organization_wide(staff_client):
    form = staff_client.get("/admin/agents/prompttemplate/add/").context["adminform"].form

    assert form["visibility"].value() == PromptTemplate.Visibility.ORGANIZATION
    response = staff_client.post(
        "/admin/agents/prompttemplate/add/",
        {"name": "Team", "slug": "team", "description": "", "body": "Hi.", "tags": "team, onboarding",
         "visibility": form["visibility"].value(), "versions-TOTAL_FORMS": "0", "versions-INITIAL_FORMS": "0"},
    )  # fmt: skip
    assert response.status_code == 302, response.content.decode()[:2000]
    prompt = PromptTemplate.objects.get(slug="team")
    assert (prompt.owner, prompt.visibility, prompt.tags) == (None, "organization", ["team", "onboarding"])


def test_the_agents_changelist_shows_prompt_and_model_in_one_short_column(staff_client, make_agent, make_llm_config):
    config = make_llm_config(None, name="A config whose name is really far too long to show")
    make_agent(None, name="Listed", llm_config=config)

    html = staff_client.get("/admin/agents/aiagent/").content.decode()

    assert "(inline) · A config whose name is really f…" in html
    assert "column-updated_at" not in html
