"""Factories for the agents tests: each makes a valid object through the services."""

from __future__ import annotations

import itertools

import pytest

from agents import services

_counter = itertools.count(1)


@pytest.fixture
def staff_client(client, make_user):
    client.force_login(make_user(is_staff=True, is_superuser=True))
    return client


@pytest.fixture
def make_llm_config(db):
    def make(owner, **fields):
        fields.setdefault("name", f"Config {next(_counter)}")
        return services.llm_config_create(owner=owner, **fields)

    return make


@pytest.fixture
def make_integration(db):
    def make(owner, **fields):
        fields.setdefault("provider", "github")
        fields.setdefault("name", f"integration-{next(_counter)}")
        return services.integration_create(owner=owner, **fields)

    return make


@pytest.fixture
def make_prompt(db):
    def make(owner, **fields):
        n = next(_counter)
        fields.setdefault("name", f"Prompt {n}")
        fields.setdefault("slug", f"prompt-{n}")
        fields.setdefault("body", "Hello {{ name }}.")
        return services.prompt_create(owner=owner, **fields)

    return make


@pytest.fixture
def make_agent(db):
    def make(owner, **fields):
        n = next(_counter)
        fields.setdefault("name", f"Agent {n}")
        fields.setdefault("slug", f"agent-{n}")
        fields.setdefault("system_prompt_text", "You help.")
        return services.agent_create(owner=owner, **fields)

    return make


@pytest.fixture
def make_session(db, make_agent):
    def make(owner, agent=None, **fields):
        return services.session_create(owner=owner, agent=agent or make_agent(None), **fields)

    return make
