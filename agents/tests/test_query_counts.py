"""List endpoints make the same number of queries for 1 row as for 50."""

from __future__ import annotations

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from agents import services


def _populate(resource: str, n: int, user, make) -> str:
    """Creates n rows of `resource` visible to `user` (with their relations) and returns the URL."""
    integrations = [make["integration"](user, provider=provider) for provider in ("github", "notion")]
    config = make["llm_config"](user)
    prompt = make["prompt"](user)
    if resource == "messages":
        session = make["session"](user)
        for i in range(n):
            services.message_append(session=session, role="user", content=f"m{i}")
        return f"/api/v1/sessions/{session.pk}/messages"
    for i in range(n):
        if resource == "llm-configs":
            make["llm_config"](user, api_key=f"sk-ant-api03-{i:030d}")
        elif resource == "integrations":
            make["integration"](user, provider="custom", is_active=False, credentials={"token": f"t{i:030d}"})
        elif resource == "prompts":
            prompt = make["prompt"](user, tags=["a", "b"])
            services.prompt_update(prompt=prompt, user=user, body="changed")
        elif resource == "agents":
            make["agent"](
                user, system_prompt=prompt, system_prompt_text="", llm_config=config, integrations=integrations
            )
        elif resource == "sessions":
            session = make["session"](user)
            services.message_append(session=session, role="user", content="hi")
    return f"/api/v1/{resource}"


def _count_queries(client, url: str) -> int:
    with CaptureQueriesContext(connection) as queries:
        response = client.get(url, {"page_size": 200})
    assert response.status_code == 200, response.content
    return len(queries)


@pytest.mark.parametrize("resource", ["llm-configs", "integrations", "prompts", "agents", "sessions", "messages"])
def test_it_lists_with_a_constant_number_of_queries(
    resource, make_user, client_for, make_llm_config, make_integration, make_prompt, make_agent, make_session
):
    make = {
        "llm_config": make_llm_config,
        "integration": make_integration,
        "prompt": make_prompt,
        "agent": make_agent,
        "session": make_session,
    }
    one_user, fifty_user = make_user(), make_user()
    url_one = _populate(resource, 1, one_user, make)
    url_fifty = _populate(resource, 50, fifty_user, make)

    one = _count_queries(client_for(one_user), url_one)
    fifty = _count_queries(client_for(fifty_user), url_fifty)

    assert one == fifty
    assert fifty <= 6  # user + token checks + count + page (+ one prefetch for agents' integrations)
