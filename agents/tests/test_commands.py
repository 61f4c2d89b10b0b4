"""manage.py init, reset_db."""

from __future__ import annotations

import io

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from accounts.models import User
from agents import services
from agents.models import AIAgent, LLMProviderConfig, PromptTemplate, PromptTemplateVersion


def _init(*args: str) -> str:
    out = io.StringIO()
    call_command("init", *args, stdout=out)
    return out.getvalue()


def _counts() -> dict[str, int]:
    return {
        model.__name__: model.objects.count()
        for model in (AIAgent, LLMProviderConfig, PromptTemplate, PromptTemplateVersion, User)
    }


@pytest.mark.django_db
def test_init_seeds_a_useful_starter_set(settings):
    settings.ANTHROPIC_API_KEY = "sk-from-the-environment"

    output = _init()

    assert "created agent code-reviewer" in output
    assert set(AIAgent.objects.values_list("slug", flat=True)) >= {
        "code-assistant",  # behind the code-assistance endpoint
        "code-reviewer",
        "requirements-to-tickets",
        "root-cause-analyst",
        "test-case-generator",
    }
    default = LLMProviderConfig.objects.get(is_default=True, owner=None)
    assert default.api_key == ""  # reads ANTHROPIC_API_KEY at call time
    agent = AIAgent.objects.get(slug="requirements-to-tickets")
    from agents import selectors

    assert selectors.llm_config_for_agent(agent).api_key == "sk-from-the-environment"
    assert "PLAT" in services.agent_system_prompt(agent=agent, variables={"project_key": "PLAT"})


@pytest.mark.django_db
def test_init_twice_changes_nothing_and_keeps_staff_edits():
    _init("--admin-email", "Admin@Example.com", "--admin-password", "a-long-admin-passphrase")
    prompt = PromptTemplate.objects.get(slug="code-review", owner=None)
    services.prompt_update(prompt=prompt, user=None, body="Our own review rules.")
    AIAgent.objects.filter(slug="code-reviewer").update(max_turns=3)
    before = _counts()

    output = _init("--admin-email", "admin@example.com", "--admin-password", "another-long-passphrase")

    assert _counts() == before
    assert "Starter data already present." in output
    assert "already exists" in output
    prompt.refresh_from_db()
    assert prompt.body == "Our own review rules."
    assert AIAgent.objects.get(slug="code-reviewer").max_turns == 3
    admin = User.objects.get(email="admin@example.com")
    assert admin.is_superuser and admin.check_password("a-long-admin-passphrase")


@pytest.mark.django_db
def test_init_takes_the_admin_from_settings(settings):
    settings.INIT_ADMIN_EMAIL = "boss@example.com"
    settings.INIT_ADMIN_PASSWORD = "a-long-admin-passphrase"

    _init()

    assert User.objects.get(email="boss@example.com").is_staff


@pytest.mark.django_db
def test_init_does_not_add_a_second_default_config():
    services.llm_config_create(owner=None, name="Staff default", is_default=True)

    _init()

    assert list(LLMProviderConfig.objects.filter(is_default=True).values_list("name", flat=True)) == ["Staff default"]


@pytest.mark.django_db
def test_init_refuses_a_weak_admin_password():
    with pytest.raises(CommandError, match="Admin password refused"):
        _init("--admin-email", "a@example.com", "--admin-password", "short")
    with pytest.raises(CommandError, match="both"):
        _init("--admin-email", "a@example.com")


def test_reset_db_refuses_without_yes_when_not_interactive(monkeypatch, db):
    monkeypatch.setattr("sys.stdin", io.StringIO(""))

    with pytest.raises(CommandError, match="--yes"):
        call_command("reset_db")


def test_reset_db_stops_unless_the_answer_is_yes(monkeypatch, user):
    class Tty(io.StringIO):
        def isatty(self) -> bool:
            return True

    monkeypatch.setattr("sys.stdin", Tty("no\n"))

    with pytest.raises(CommandError, match="Aborted"):
        call_command("reset_db")
    assert User.objects.filter(pk=user.pk).exists()


@pytest.mark.django_db(transaction=True)
def test_reset_db_with_yes_drops_everything_and_migrates(make_user):
    make_user()
    services.prompt_create(owner=None, name="p", slug="p", body="x")
    out = io.StringIO()

    call_command("reset_db", "--yes", stdout=out)

    assert "Database migrated from scratch." in out.getvalue()
    assert User.objects.count() == 0
    assert PromptTemplate.objects.count() == 0


def test_init_is_safe_when_several_containers_run_it_at_once(tmp_path):
    """Three real `manage.py init` processes on one fresh (file) database."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    from django.conf import settings

    database = tmp_path / "conduit.sqlite3"
    env = {**os.environ, "DATABASE_URL": f"sqlite:///{database}", "SECRET_KEY": "x" * 50}
    manage = Path(settings.BASE_DIR) / "manage.py"
    processes = [
        subprocess.Popen(
            [sys.executable, str(manage), "init"], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
        )
        for _ in range(3)
    ]
    outputs = [process.communicate(timeout=120)[0].decode() for process in processes]

    assert [process.returncode for process in processes] == [0, 0, 0], outputs
    assert sum("Seeded:" in output for output in outputs) == 1
    assert sum("Starter data already present." in output for output in outputs) == 2


@pytest.mark.django_db
def test_starter_agents_allow_only_tools_they_are_given_and_one_has_a_workspace_for_uploads():
    from assistant.tools.toolset import AgentTools, workspace_tools_for
    from assistant.tools.mcp import McpServers
    from assistant.tools.workspace import FILE_TOOLS, TOOLS

    _init()
    for agent in AIAgent.objects.filter(owner=None):
        files, _ = workspace_tools_for(agent)
        offered = set(TOOLS) if agent.workspace_tools == AIAgent.WorkspaceTools.FILES_AND_SHELL else set(FILE_TOOLS)
        if not files:
            assert agent.allowed_tools == [], agent.slug  # names without tools would silently match nothing
            continue
        names = {name for name in agent.allowed_tools}
        assert names <= offered, (agent.slug, names - offered)
        # The toolset's own strict check agrees (it refuses patterns that match no tool).
        definitions = [TOOLS[name].definition() for name in offered]
        tools = AgentTools(_Definitions(definitions), McpServers([]), agent.allowed_tools, strict=True)
        assert tools.names == names
    reviewer = AIAgent.objects.get(slug="code-reviewer")
    assert reviewer.workspace_tools == AIAgent.WorkspaceTools.FILES
    assert "list_directory" in reviewer.allowed_tools  # what the demo model calls when asked to "list files"


class _Definitions:
    def __init__(self, definitions):
        self._definitions = definitions

    def definitions(self):
        return self._definitions
