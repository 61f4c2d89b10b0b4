"""Bad input answers 400 with a message that says what is wrong, in the one error shape."""

from __future__ import annotations

import pytest


def _fields(response) -> dict:
    assert response.status_code == 400, response.content
    body = response.json()["detail"]
    assert body["code"] == "invalid"
    return body["fields"]


def test_it_names_missing_variables_when_rendering(auth_client, make_prompt, user):
    prompt = make_prompt(user, body="Dear {{ name }}, about {{topic}} and {{ name }}: {{ date }}")

    response = auth_client.post(f"/api/v1/prompts/{prompt.pk}/render", {"variables": {"name": "Ann"}}, format="json")

    assert _fields(response) == {"variables": ["Missing variable(s): topic, date."]}


def test_it_renders_a_prompt_without_evaluating_template_syntax(auth_client, make_prompt, user):
    prompt = make_prompt(user, body="{% load static %}{{ a }} and {{b}} {{ a.__class__ }}")

    response = auth_client.post(
        f"/api/v1/prompts/{prompt.pk}/render", {"variables": {"a": "{{ b }}", "b": 2}}, format="json"
    )

    assert response.status_code == 200, response.content
    # Only simple names are placeholders; values are not expanded again; nothing else is evaluated.
    assert response.json() == {"rendered": "{% load static %}{{ b }} and 2 {{ a.__class__ }}", "version": 1}


def test_it_refuses_an_unknown_llm_provider(auth_client):
    response = auth_client.post("/api/v1/llm-configs", {"name": "x", "provider": "gemini"}, format="json")

    assert _fields(response) == {"provider": ['Unknown provider "gemini"; supported: anthropic, openai.']}


def test_it_refuses_an_unknown_integration_provider(auth_client):
    response = auth_client.post("/api/v1/integrations", {"provider": "myspace"}, format="json")

    assert "Unknown provider \"myspace\"" in _fields(response)["provider"][0]


@pytest.mark.parametrize(
    "mcp_server, message",
    [
        ({"type": "stdio"}, "command:"),
        ({"command": "npx", "args": "-y server"}, "args: must be a list of strings."),
        ({"command": "npx", "env": {"TOKEN": 42}}, "env:"),
        ({"command": "npx", "env": {"BAD NAME": "x"}}, "env: invalid variable name(s): BAD NAME."),
        ({"type": "sse", "url": "ftp://example.com"}, "url:"),
        ({"type": "http", "url": "https://mcp.example.com", "headers": ["x"]}, "headers:"),
        ({"type": "websocket", "url": "wss://x"}, "type: must be one of stdio, sse, http"),
        ({"command": "npx", "url": "https://x"}, "url: not allowed in a stdio server definition"),
        ("npx server", "must be a JSON object"),
    ],
)
def test_it_says_what_is_wrong_with_a_bad_mcp_definition(auth_client, mcp_server, message):
    response = auth_client.post("/api/v1/integrations", {"provider": "github", "mcp_server": mcp_server}, format="json")

    errors = _fields(response)["mcp_server"]
    assert any(message in error for error in errors), errors


def test_it_accepts_good_mcp_definitions(auth_client, make_integration):
    stdio = {"command": "npx", "args": ["-y", "@modelcontextprotocol/server-github"], "env": {"GITHUB_TOKEN": "x"}}
    http = {"type": "http", "url": "https://mcp.example.com/mcp", "headers": {"Authorization": "Bearer x"}}
    sse = {"type": "sse", "url": "https://mcp.example.com/sse"}

    for provider, definition in (("notion", http), ("linear", sse)):
        response = auth_client.post(
            "/api/v1/integrations", {"provider": provider, "mcp_server": definition}, format="json"
        )
        assert response.status_code == 201, response.content
    # stdio servers run a command on the server: staff define them, organization-wide.
    assert make_integration(None, provider="github", mcp_server=stdio).mcp_server == stdio


def test_it_allows_one_active_integration_per_provider(auth_client, make_integration, user):
    make_integration(user, provider="github")

    response = auth_client.post("/api/v1/integrations", {"provider": "github"}, format="json")
    inactive = auth_client.post("/api/v1/integrations", {"provider": "github", "is_active": False}, format="json")

    assert _fields(response) == {"provider": ["An active integration for this provider already exists."]}
    assert inactive.status_code == 201


def test_it_checks_custom_properties_against_the_agents_schema(auth_client, make_agent):
    agent = make_agent(
        None,
        custom_properties_schema={
            "type": "object",
            "properties": {"project_key": {"type": "string"}, "limit": {"type": "integer"}},
            "required": ["project_key"],
        },
    )

    def start(custom_properties):
        return auth_client.post(
            "/api/v1/sessions", {"agent": agent.pk, "custom_properties": custom_properties}, format="json"
        )

    missing = start({"limit": 3})
    wrong_type = start({"project_key": "P", "limit": "many"})
    good = start({"project_key": "P", "limit": 3})

    # jsonschema-rs' messages quote values as JSON.
    assert _fields(missing) == {"custom_properties": ['"project_key" is a required property']}
    assert _fields(wrong_type) == {"custom_properties": ['limit: "many" is not of type "integer"']}
    assert good.status_code == 201, good.content
    assert good.json()["custom_properties"] == {"project_key": "P", "limit": 3}


def test_it_checks_custom_properties_on_update_too(client_for, user, make_session, make_agent):
    agent = make_agent(None, custom_properties_schema={"type": "object", "additionalProperties": False})
    session = make_session(user, agent=agent)

    response = client_for(user).patch(f"/api/v1/sessions/{session.pk}", {"custom_properties": {"x": 1}}, format="json")

    assert "Additional properties are not allowed" in _fields(response)["custom_properties"][0]


def test_it_refuses_an_invalid_json_schema_for_an_agent(auth_client):
    response = auth_client.post(
        "/api/v1/agents",
        {"name": "A", "slug": "a-bad-schema", "custom_properties_schema": {"type": "no-such-type"}},
        format="json",
    )

    assert "Not a valid JSON Schema at type" in _fields(response)["custom_properties_schema"][0]


def test_it_refuses_both_a_prompt_template_and_inline_text(auth_client, make_prompt, user):
    prompt = make_prompt(user)

    response = auth_client.post(
        "/api/v1/agents",
        {"name": "A", "slug": "a-both", "system_prompt": prompt.pk, "system_prompt_text": "inline"},
        format="json",
    )

    assert "not both" in _fields(response)["system_prompt_text"][0]


def test_it_refuses_badly_formed_tags(auth_client):
    response = auth_client.post(
        "/api/v1/prompts", {"name": "p", "slug": "p", "body": "x", "tags": ["Has Space"]}, format="json"
    )

    assert "Tag 1" in _fields(response)["tags"][0]


def test_it_refuses_a_duplicate_prompt_slug_of_the_same_owner(auth_client, make_prompt, user, other_user):
    make_prompt(user, slug="dup")
    make_prompt(other_user, slug="same-as-other")

    def create(slug):
        return auth_client.post("/api/v1/prompts", {"name": "p", "slug": slug, "body": "x"}, format="json")

    duplicate = create("dup")
    others_slug = create("same-as-other")

    assert _fields(duplicate) == {"slug": ["You already have a prompt with this slug."]}
    assert others_slug.status_code == 201


def test_it_refuses_a_session_with_an_inactive_agent(auth_client, make_agent):
    agent = make_agent(None, is_active=False)

    response = auth_client.post("/api/v1/sessions", {"agent": agent.pk}, format="json")

    assert _fields(response) == {"agent": ["This agent is not active."]}


def test_it_answers_409_when_deleting_a_prompt_an_agent_uses(auth_client, make_prompt, make_agent, user):
    prompt = make_prompt(user)
    make_agent(user, system_prompt=prompt, system_prompt_text="", name="Uses it")

    response = auth_client.delete(f"/api/v1/prompts/{prompt.pk}")

    assert response.status_code == 409
    assert response.json()["detail"]["code"] == "protected"
    assert "Uses it" in response.json()["detail"]["message"]


def test_it_refuses_a_non_numeric_after_seq(client_for, user, make_session):
    session = make_session(user)

    response = client_for(user).get(f"/api/v1/sessions/{session.pk}/messages?after_seq=abc")

    assert _fields(response) == {"after_seq": ["Must be a non-negative integer."]}


def test_it_answers_409_when_deleting_an_agent_with_sessions(auth_client, make_agent, make_session, user):
    agent = make_agent(user)
    make_session(user, agent=agent)

    response = auth_client.delete(f"/api/v1/agents/{agent.pk}")

    assert response.status_code == 409
    assert "user agent session" in response.json()["detail"]["message"]


def test_deleting_a_user_deletes_their_agents_prompts_and_sessions(user, make_agent, make_prompt, make_session):
    from agents.models import AIAgent, PromptTemplate, UserAgentSession

    agent = make_agent(user, system_prompt=make_prompt(user), system_prompt_text="")
    make_session(user, agent=agent)

    user.delete()

    assert (AIAgent.objects.count(), PromptTemplate.objects.count(), UserAgentSession.objects.count()) == (0, 0, 0)


def test_it_stores_tags_lower_case_without_duplicates(auth_client):
    data = {"name": "p", "slug": "p", "body": "x", "tags": ["Python", " python", "Review"]}

    response = auth_client.post("/api/v1/prompts", data, format="json")

    assert response.status_code == 201, response.content
    assert response.json()["tags"] == ["python", "review"]


def test_an_agent_lists_its_prompt_variables_with_their_defaults(auth_client):
    created = auth_client.post(
        "/api/v1/agents",
        {"name": "Jira", "slug": "jira", "system_prompt_text": 'Work on {{ project }} for {{ team | default: "Platform" }}.'},
        format="json",
    )
    assert created.status_code == 201, created.json()
    assert created.json()["prompt_variables"] == [
        {"name": "project", "default": None, "required": True},
        {"name": "team", "default": "Platform", "required": False},
    ]


def test_a_session_can_name_its_agent_by_slug(client_for, user, other_user, make_agent):
    org = make_agent(None, slug="helper")
    mine = make_agent(user, slug="mine")
    theirs = make_agent(other_user, slug="theirs")
    client = client_for(user)

    by_slug = client.post("/api/v1/sessions", {"agent": "helper"}, format="json")
    assert by_slug.status_code == 201 and by_slug.json()["agent"] == org.pk
    assert client.post("/api/v1/sessions", {"agent": "mine"}, format="json").json()["agent"] == mine.pk
    assert client.post("/api/v1/sessions", {"agent": str(mine.pk)}, format="json").json()["agent"] == mine.pk

    assert _fields(client.post("/api/v1/sessions", {"agent": "theirs"}, format="json")) == {
        "agent": ['No agent with slug "theirs" that you can use.']
    }
    assert _fields(client.post("/api/v1/sessions", {"agent": theirs.pk}, format="json")) == {
        "agent": [f"No agent with id {theirs.pk} that you can use."]
    }
    wrong_type = ["Give the agent's id (a number) or its slug (letters, digits, - and _)."]
    assert list(_fields(client.post("/api/v1/sessions", {"agent": "x\x00y"}, format="json"))) == ["agent"]
    for bad in ("bad slug!", "a" * 101, True, [1], {"id": 1}, 1.5):
        assert _fields(client.post("/api/v1/sessions", {"agent": bad}, format="json")) == {"agent": wrong_type}, bad
    assert _fields(client.post("/api/v1/sessions", {"agent": 2**70}, format="json")) == {
        "agent": [f"No agent with id {2**70} that you can use."]
    }
