"""The services other apps build on: messages, sessions, prompts, system prompts, LLM config resolution."""

from __future__ import annotations

import threading

import pytest
from django.core.exceptions import ValidationError
from django.db import connection

from agents import selectors, services
from agents.models import Message, prompt_variables


def test_it_numbers_messages_per_session(make_session, user):
    first, second = make_session(user), make_session(user)

    a = services.message_append(session=first, role="user", content="hi")
    b = services.message_append(
        session=first,
        role="assistant",
        content=[{"type": "text", "text": "hello"}],
        status=Message.Status.STREAMING,
        model="claude-sonnet-4-5",
        input_tokens=12,
    )
    c = services.message_append(session=second, role="user", content="other")

    assert (a.seq, b.seq, c.seq) == (1, 2, 1)
    assert a.content == [{"type": "text", "text": "hi"}]
    assert b.text == "hello" and b.status == "streaming" and b.input_tokens == 12


def test_it_bumps_the_session_when_a_message_arrives(make_session, user):
    session = make_session(user)
    before = session.updated_at

    services.message_append(session=session, role="user", content="hi")

    session.refresh_from_db()
    assert session.updated_at > before


def test_it_updates_a_streaming_message_in_place(make_session, user):
    message = services.message_append(session=make_session(user), role="assistant", content=[], status="streaming")

    services.message_update(
        message=message, content=[{"type": "text", "text": "done"}], status="stopped", output_tokens=5
    )

    message.refresh_from_db()
    assert (message.text, message.status, message.output_tokens) == ("done", "stopped", 5)


# Concurrent writers need a real server: the in-memory SQLite test database is one shared-cache
# connection pool that answers "table is locked" instead of waiting (a file database with the
# IMMEDIATE transaction mode serialises writers). So this test exists on PostgreSQL runs only.
@pytest.mark.django_db(transaction=True)
def _concurrent_appends_get_distinct_sequence_numbers(make_session, user):
    session = make_session(user)
    errors: list[BaseException] = []

    def append(n: int) -> None:
        try:
            for i in range(5):
                services.message_append(session=session, role="user", content=f"{n}-{i}")
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=append, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert errors == []
    assert sorted(Message.objects.filter(session=session).values_list("seq", flat=True)) == list(range(1, 21))


if connection.vendor == "postgresql":  # the backend may be ours (config.postgresql): ask its vendor
    test_it_gives_concurrent_appends_distinct_sequence_numbers = _concurrent_appends_get_distinct_sequence_numbers


def test_it_versions_a_prompt_when_its_body_changes(make_prompt, user):
    prompt = make_prompt(user, body="v1 {{ a }}")

    services.prompt_update(prompt=prompt, user=user, name="renamed")  # no body change: no version
    services.prompt_update(prompt=prompt, user=user, body="v2 {{ a }}")

    assert prompt.version == 2
    assert list(prompt.versions.values_list("version", "body")) == [(2, "v2 {{ a }}"), (1, "v1 {{ a }}")]


def test_it_versions_prompts_edited_through_the_api(auth_client, make_prompt, user):
    prompt = make_prompt(user, body="old")

    auth_client.patch(f"/api/v1/prompts/{prompt.pk}", {"body": "new"}, format="json")
    versions = auth_client.get(f"/api/v1/prompts/{prompt.pk}/versions").json()["results"]

    assert [(v["version"], v["body"]) for v in versions] == [(2, "new"), (1, "old")]


def test_it_renders_variables_of_any_json_type():
    rendered = services.prompt_render(
        template_body="{{ n }} {{ flag }} {{ items }}", variables={"n": 3, "flag": True, "items": ["a"]}
    )

    assert rendered == '3 true ["a"]'


def test_it_names_missing_variables():
    with pytest.raises(ValidationError) as caught:
        services.prompt_render(template_body="{{ a }} {{ b }} {{ a }}", variables={})

    assert caught.value.message_dict == {"variables": ["Missing variable(s): a, b."]}


def test_it_builds_an_agents_system_prompt_from_its_template(make_prompt, make_agent):
    prompt = make_prompt(None, body="Work on {{ project_key }}.")
    agent = make_agent(None, system_prompt=prompt, system_prompt_text="")

    assert services.agent_system_prompt(agent=agent, variables={"project_key": "PLAT"}) == "Work on PLAT."
    with pytest.raises(ValidationError):
        services.agent_system_prompt(agent=agent)


def test_it_builds_an_agents_system_prompt_from_inline_text(make_agent):
    assert services.agent_system_prompt(agent=make_agent(None, system_prompt_text="Be brief.")) == "Be brief."


def test_it_keeps_one_default_config_per_owner(make_llm_config, user):
    first = make_llm_config(user, is_default=True)
    second = make_llm_config(user, is_default=True)
    org = make_llm_config(None, is_default=True)

    first.refresh_from_db()
    assert not first.is_default and second.is_default and org.is_default


def test_it_resolves_an_agents_own_config(make_agent, make_llm_config, settings):
    config = make_llm_config(None, model="claude-opus-4-1", api_key="sk-own-key-000000000000", max_tokens=100)

    resolved = selectors.llm_config_for_agent(make_agent(None, llm_config=config))

    assert (resolved.model, resolved.api_key, resolved.max_tokens, resolved.config_id) == (
        "claude-opus-4-1",
        "sk-own-key-000000000000",
        100,
        config.pk,
    )


def test_it_falls_back_to_the_organization_default_then_settings(make_agent, make_llm_config, settings):
    settings.ANTHROPIC_API_KEY = "sk-from-settings"
    settings.ANTHROPIC_MODEL = "claude-from-settings"
    settings.ANTHROPIC_BASE_URL = "http://127.0.0.1:9"
    agent = make_agent(None)

    without_default = selectors.llm_config_for_agent(agent)
    default = make_llm_config(None, is_default=True, temperature=0.2)
    with_default = selectors.llm_config_for_agent(agent)

    assert (without_default.model, without_default.api_key, without_default.config_id) == (
        "claude-from-settings",
        "sk-from-settings",
        None,
    )
    # The default config has no key or model of its own: those still come from the settings.
    assert (with_default.config_id, with_default.temperature, with_default.api_key, with_default.base_url) == (
        default.pk,
        0.2,
        "sk-from-settings",
        "http://127.0.0.1:9",
    )


def test_it_prefers_the_agent_owners_default_config(make_agent, make_llm_config, user):
    make_llm_config(None, is_default=True)
    own_default = make_llm_config(user, is_default=True)

    assert selectors.llm_config_for_agent(make_agent(user)).config_id == own_default.pk


@pytest.mark.parametrize(
    "tag, expected", [("python", {"a", "b"}), ("py", set()), ("review", {"b"}), ("PYTHON", {"a", "b"})]
)
def test_it_filters_by_tag_exactly(tag, expected, auth_client, make_agent):
    make_agent(None, slug="a", tags=["python"])
    make_agent(None, slug="b", tags=["review", "python"])
    make_agent(None, slug="c", tags=["python-extra", "pyt"])

    response = auth_client.get(f"/api/v1/agents?tag={tag}")

    assert {row["slug"] for row in response.json()["results"]} == expected


def test_it_filters_sessions_by_agent_and_messages_by_seq(client_for, user, make_session, make_agent):
    agent = make_agent(None, slug="the-agent")
    session = make_session(user, agent=agent)
    make_session(user)
    for text in ("one", "two", "three"):
        services.message_append(session=session, role="user", content=text)
    client = client_for(user)

    by_id = client.get(f"/api/v1/sessions?agent={agent.pk}").json()
    by_slug = client.get("/api/v1/sessions?agent=the-agent").json()
    after = client.get(f"/api/v1/sessions/{session.pk}/messages?after_seq=1").json()

    assert [row["id"] for row in by_id["results"]] == [session.pk]
    assert [row["id"] for row in by_slug["results"]] == [session.pk]
    assert [(m["seq"], m["content"][0]["text"]) for m in after["results"]] == [(2, "two"), (3, "three")]


def test_it_searches_and_paginates(auth_client, make_prompt, user):
    for n in range(5):
        make_prompt(user, name=f"Needle {n}")
    make_prompt(user, name="Haystack")

    page = auth_client.get("/api/v1/prompts?search=needle&page_size=2").json()

    assert page["count"] == 5
    assert len(page["results"]) == 2
    assert page["next"] is not None


def test_it_builds_an_agents_mcp_servers_with_credentials_in_env_and_headers(make_agent, make_integration, user):
    github = make_integration(
        None,  # stdio: organization-wide only
        provider="github",
        name="github",
        credentials={"GITHUB_PERSONAL_ACCESS_TOKEN": "ghp_secret", "refresh token": "not-an-env-name"},
        mcp_server={
            "command": "npx",
            "args": ["-y", "server-github"],
            "env": {"GITHUB_PERSONAL_ACCESS_TOKEN": "", "X": "1"},
        },
    )
    notion = make_integration(
        user,
        provider="notion",
        name="notion",
        credentials="ntn_secret",
        mcp_server={"type": "http", "url": "https://mcp.notion.com/mcp"},
    )
    no_server = make_integration(user, provider="slack")
    inactive = make_integration(None, provider="linear", is_active=False, mcp_server={"command": "linear"})
    agent = make_agent(user, integrations=[github, notion, no_server, inactive])

    organizations = selectors.agent_mcp_servers(agent=agent)
    users = selectors.agent_mcp_servers(agent=agent, users_own=True)
    assert (set(organizations), set(users)) == ({"github"}, {"notion"})
    servers = {**organizations, **users}

    assert servers == {
        "github": {
            "type": "stdio",
            "command": "npx",
            "args": ["-y", "server-github"],
            "env": {"GITHUB_PERSONAL_ACCESS_TOKEN": "ghp_secret", "X": "1"},
        },
        "notion": {
            "type": "http",
            "url": "https://mcp.notion.com/mcp",
            "headers": {"Authorization": "Bearer ntn_secret"},
        },
    }


def test_a_variable_with_a_default_may_be_left_out():
    body = 'Team {{ team | default: "Platform" }}, lead {{ lead|default:\'Ann\' }}, project {{ project }}, {{ team }}.'
    assert services.prompt_render(template_body=body, variables={"project": "X"}) == (
        "Team Platform, lead Ann, project X, Platform."
    )
    assert services.prompt_render(template_body=body, variables={"project": "X", "team": "Data"}) == (
        "Team Data, lead Ann, project X, Data."
    )
    with pytest.raises(ValidationError) as caught:
        services.prompt_render(template_body=body, variables={"team": "Data"})
    assert caught.value.message_dict == {"variables": ["Missing variable(s): project."]}
    assert [(v.name, v.default, v.required) for v in prompt_variables(body)] == [
        ("team", "Platform", False), ("lead", "Ann", False), ("project", None, True)
    ]  # fmt: skip
