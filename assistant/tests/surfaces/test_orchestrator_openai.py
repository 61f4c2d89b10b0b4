"""`manage.py run_orchestrator` with an organization agent whose LLM config is OpenAI-compatible: the
workspace tools are offered as functions, called with arguments streamed in pieces, their results go
back as `tool` messages, and the session resumes on Anthropic with the same history."""

from __future__ import annotations

import io
import json

import pytest
from django.core.management import call_command

from agents.models import AIAgent, LLMProviderConfig, UserAgentSession
from config.testing.fake_anthropic import Reply, fake_anthropic_server
from config.testing.fake_openai import Chunks, FunctionCall, fake_openai_server

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def gpt(settings):
    settings.OPENAI_MAX_RETRIES = 0
    with fake_openai_server() as server:
        yield server


@pytest.fixture
def admin(make_user):
    return make_user(email="admin@example.com", is_staff=True, is_superuser=True)


@pytest.fixture
def workspace(tmp_path):
    root = tmp_path / "ws"
    root.mkdir()
    (root / "README.md").write_text("# Demo\nSay hello.\n")
    return root


@pytest.fixture
def gpt_agent(gpt):
    config = LLMProviderConfig.objects.create(
        name="Org GPT", provider="openai", model="gpt-test-1", base_url=gpt.base_url, api_key="sk-org-gpt"
    )
    return AIAgent.objects.create(name="Editor", slug="editor", system_prompt_text="Edit files.", llm_config=config)


def json_run(*args: str) -> list[dict]:
    out = io.StringIO()
    call_command("run_orchestrator", "--json", *args, stdout=out)
    return [json.loads(line) for line in out.getvalue().splitlines()]


def test_workspace_tools_run_for_an_openai_model(gpt, gpt_agent, admin, workspace):
    edit = FunctionCall("edit_file", {"path": "README.md", "old_string": "Say hello.", "new_string": "Say goodbye."})
    gpt.script(Chunks(text=["Editing."], tool_calls=[edit], prompt_tokens=50, completion_tokens=20),
               Chunks(text=["Done."], prompt_tokens=80, completion_tokens=2))  # fmt: skip
    events = json_run("-m", "Say goodbye instead", "--agent", "editor", "--workspace-dir", str(workspace))

    assert (workspace / "README.md").read_text() == "# Demo\nSay goodbye.\n"
    assert [e["type"] for e in events if e["type"] in ("tool_use", "tool_result")] == ["tool_use", "tool_result"]
    assert events[-1]["stop_reason"] == "end_turn"
    first = gpt.requests[0].body
    assert first["messages"][0] == {"role": "system", "content": "Edit files."}
    offered = {t["function"]["name"] for t in first["tools"]}
    assert "edit_file" in offered and all(t["type"] == "function" for t in first["tools"])
    edit_tool = next(t for t in first["tools"] if t["function"]["name"] == "edit_file")
    assert edit_tool["function"]["parameters"]["type"] == "object"
    result = gpt.requests[1].body["messages"][-1]
    assert result == {"role": "tool", "tool_call_id": edit.id, "content": "Edited README.md: 1 replacement."}

    session = UserAgentSession.objects.get()
    answers = list(session.messages.filter(role="assistant").order_by("seq"))
    assert [(a.model, a.input_tokens, a.output_tokens) for a in answers] == [("gpt-test-1", 50, 20), ("gpt-test-1", 80, 2)]


def test_a_cli_session_started_on_openai_resumes_on_anthropic(gpt, gpt_agent, admin, workspace, settings):
    read = FunctionCall("read_file", {"path": "README.md"})
    gpt.script(Chunks(tool_calls=[read]), Chunks(text=["It says hello."]))
    first = json_run("-m", "What does the README say?", "--agent", "editor", "--workspace-dir", str(workspace))
    session_id = first[0]["session_id"]

    settings.ANTHROPIC_MAX_RETRIES = 0
    with fake_anthropic_server() as claude:
        gpt_agent.llm_config = LLMProviderConfig.objects.create(
            name="Org Claude", provider="anthropic", model="claude-test-1", base_url=claude.base_url, api_key="sk-ant"
        )
        gpt_agent.save()
        claude.script(Reply(text=["Still hello."]))
        json_run("--resume-session-id", str(session_id), "-m", "And now?", "--workspace-dir", str(workspace))
        history = claude.requests[-1].body["messages"]

    assert [m["role"] for m in history] == ["user", "assistant", "user", "assistant", "user"]
    assert history[1]["content"] == [{"type": "tool_use", "id": read.id, "name": "read_file", "input": {"path": "README.md"}}]
    assert history[2]["content"][0]["tool_use_id"] == read.id and "Say hello." in history[2]["content"][0]["content"]
    assert history[3]["content"] == [{"type": "text", "text": "It says hello."}]


def test_an_openai_config_without_any_key_names_the_openai_setting(gpt, admin, workspace, settings):
    from django.core.management import CommandError

    settings.OPENAI_API_KEY = ""
    config = LLMProviderConfig.objects.create(name="Keyless", provider="openai", base_url=gpt.base_url)
    AIAgent.objects.create(name="Keyless", slug="keyless", system_prompt_text="x", llm_config=config)
    with pytest.raises(CommandError, match="set OPENAI_API_KEY or give the agent"):
        json_run("-m", "Hi", "--agent", "keyless", "--workspace-dir", str(workspace))
    assert gpt.requests == []
