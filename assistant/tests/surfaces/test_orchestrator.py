"""`manage.py run_orchestrator` against the fake Messages API, with real files and real MCP servers.

The command runs its own event loop and reaches the database from a worker thread, so these tests
commit for real (transaction=True)."""

from __future__ import annotations

import asyncio
import io
import json
import logging
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from django.conf import settings
from django.core.management import CommandError, call_command
from django.db import connection

from agents.models import AIAgent, Integration, Message, PromptTemplate, UserAgentSession
from assistant.surfaces.cli import EventSink, OrchestratorOptions, run_orchestrator
from config.testing.fake_anthropic import Reply, ToolUse, fake_anthropic_server

NOTES_SERVER = str(Path(__file__).parents[1] / "mcp_servers" / "notes_server.py")
SECRET = "notes-secret-0123456789"

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def fake(settings):
    settings.ANTHROPIC_MAX_RETRIES = 0
    settings.ANTHROPIC_API_KEY = "sk-test-key"
    settings.ANTHROPIC_MODEL = "claude-test-1"
    with fake_anthropic_server() as server:
        settings.ANTHROPIC_BASE_URL = server.base_url
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
def mcp_config(tmp_path):
    path = tmp_path / "mcp.json"
    path.write_text(
        json.dumps(
            {
                "mcpServers": {
                    "notes": {"command": sys.executable, "args": [NOTES_SERVER], "env": {"NOTES_TOKEN": SECRET}}
                }
            }
        )
    )
    return path


def run(*args: str) -> str:
    out = io.StringIO()
    call_command("run_orchestrator", *args, stdout=out)
    return out.getvalue()


def json_run(*args: str) -> list[dict]:
    return [json.loads(line) for line in run("--json", *args).splitlines()]


def stored(session: UserAgentSession) -> list[tuple[str, list[str], str]]:
    return [(m.role, [b["type"] for b in m.content], m.status) for m in session.messages.order_by("seq")]


def test_it_streams_the_answer_and_stores_the_session(fake, admin, workspace):
    fake.script(Reply(text=["Hello", " there."], output_tokens=3))
    output = run("-m", "Say hello", "--workspace-dir", str(workspace))
    session = UserAgentSession.objects.get()
    assert output.startswith("Hello there.\n")
    assert output.rstrip().endswith(f"session: {session.pk}")
    assert "[end_turn · 1 turn · 12 in / 3 out tokens" in output
    assert session.owner == admin and session.agent.slug == "orchestrator" and session.title == "Say hello"
    assert stored(session) == [("user", ["text"], "complete"), ("assistant", ["text"], "complete")]
    answer = session.messages.get(role="assistant")
    assert (answer.model, answer.stop_reason, answer.output_tokens) == ("claude-test-1", "end_turn", 3)
    sent = fake.requests[0].body
    assert sent["messages"] == [{"role": "user", "content": [{"type": "text", "text": "Say hello"}]}]
    assert str(workspace.resolve()) in sent["system"]
    assert {t["name"] for t in sent["tools"]} == {
        "list_directory",
        "glob",
        "grep",
        "read_file",
        "write_file",
        "edit_file",
        "run_shell",
    }


def test_parallel_tool_calls_change_files_and_their_results_go_back_in_the_right_shape(fake, admin, workspace):
    write = ToolUse("write_file", {"path": "notes/todo.txt", "content": "buy milk\n"})
    edit = ToolUse("edit_file", {"path": "README.md", "old_string": "Say hello.", "new_string": "Say goodbye."})
    fake.script(Reply(text=["Working."], tool_uses=[write, edit], stop_reason="tool_use"), Reply(text=["Done."]))
    output = run("-m", "Tidy up", "--workspace-dir", str(workspace))
    assert (workspace / "notes" / "todo.txt").read_text() == "buy milk\n"
    assert (workspace / "README.md").read_text() == "# Demo\nSay goodbye.\n"
    assert '→ write_file(path="notes/todo.txt", content="buy milk\\n")' in output
    assert "← ok: Created notes/todo.txt (9 bytes)." in output and "← ok: Edited README.md: 1 replacement." in output
    second = fake.requests[1].body["messages"]
    assert [m["role"] for m in second] == ["user", "assistant", "user"]
    assert second[2]["content"] == [
        {
            "type": "tool_result",
            "tool_use_id": write.id,
            "content": "Created notes/todo.txt (9 bytes).",
            "is_error": False,
        },
        {
            "type": "tool_result",
            "tool_use_id": edit.id,
            "content": "Edited README.md: 1 replacement.",
            "is_error": False,
        },
    ]
    session = UserAgentSession.objects.get()
    assert stored(session) == [
        ("user", ["text"], "complete"),
        ("assistant", ["text", "tool_use", "tool_use"], "complete"),
        ("user", ["tool_result", "tool_result"], "complete"),
        ("assistant", ["text"], "complete"),
    ]


def test_escape_attempts_and_unknown_tools_come_back_as_errors_and_change_nothing(fake, admin, workspace, tmp_path):
    (workspace / "out").symlink_to(tmp_path)
    attempts = [
        ToolUse("write_file", {"path": "../evil.txt", "content": "x"}),
        ToolUse("write_file", {"path": "out/evil.txt", "content": "x"}),
        ToolUse("read_file", {"path": "/etc/passwd"}),
        ToolUse("launch_rockets", {"count": 3}),
    ]
    fake.script(Reply(tool_uses=attempts, stop_reason="tool_use"), Reply(text=["I can't."]))
    run("-m", "Escape", "--workspace-dir", str(workspace))
    results = fake.requests[1].body["messages"][2]["content"]
    assert [r["tool_use_id"] for r in results] == [a.id for a in attempts]
    assert all(r["is_error"] for r in results)
    assert "outside the workspace" in results[0]["content"] and "outside the workspace" in results[1]["content"]
    assert "outside the workspace" in results[2]["content"] and "root:" not in results[2]["content"]
    assert results[3]["content"].startswith("Unknown tool: launch_rockets. Available tools:")
    assert not (tmp_path / "evil.txt").exists()


def test_allowed_tools_restrict_what_the_model_is_offered_and_may_call(fake, admin, workspace):
    fake.script(
        Reply(tool_uses=[ToolUse("write_file", {"path": "x.txt", "content": "x"})], stop_reason="tool_use"),
        Reply(text=["ok"]),
    )
    run("-m", "Write", "--workspace-dir", str(workspace), "--allowed-tools", "read_file,Grep")
    assert sorted(t["name"] for t in fake.requests[0].body["tools"]) == ["grep", "read_file"]
    result = fake.requests[1].body["messages"][2]["content"][0]
    assert result["is_error"] and result["content"].startswith("Unknown tool: write_file")
    assert not (workspace / "x.txt").exists()


def test_mcp_tools_are_offered_namespaced_called_and_their_secrets_stay_out_of_args_and_logs(
    fake, admin, workspace, mcp_config, caplog
):
    caplog.set_level(logging.DEBUG)
    add, whoami = ToolUse("notes__add", {"a": 2, "b": 3}), ToolUse("notes__whoami", {})
    fake.script(Reply(tool_uses=[add, whoami], stop_reason="tool_use"), Reply(text=["Five."]))
    events = json_run("-m", "Add", "--workspace-dir", str(workspace), "--mcp-config", str(mcp_config))
    offered = {t["name"]: t for t in fake.requests[0].body["tools"]}
    assert {"notes__add", "notes__whoami", "notes__write_note", "notes__fail", "read_file"} <= set(offered)
    assert offered["notes__add"]["input_schema"]["required"] == ["a", "b"]
    results = fake.requests[1].body["messages"][2]["content"]
    assert results[0] == {"type": "tool_result", "tool_use_id": add.id, "content": "5", "is_error": False}
    who = json.loads(results[1]["content"])
    assert who["token_length"] == len(SECRET) and SECRET not in " ".join(who["argv"])
    assert Path(who["cwd"]) == workspace.resolve()
    assert SECRET not in caplog.text and "MCP server notes started" in caplog.text
    assert SECRET not in json.dumps([e for e in events if e["type"] != "tool_result"])


def test_an_agent_brings_its_prompt_model_turn_limit_and_integrations(fake, admin, workspace):
    prompt = PromptTemplate.objects.create(name="Reviewer", slug="reviewer", body="Review code in {{ workspace }}.")
    notes = Integration.objects.create(
        provider="custom",
        name="notes",
        credentials={"NOTES_TOKEN": SECRET},
        mcp_server={"command": sys.executable, "args": [NOTES_SERVER]},
    )
    agent = AIAgent.objects.create(
        name="Reviewer", slug="reviewer", system_prompt=prompt, max_turns=2, allowed_tools=["Read", "mcp__notes"]
    )
    agent.integrations.add(notes)
    fake.default = Reply(tool_uses=[ToolUse("notes__whoami", {})], stop_reason="tool_use")
    events = json_run(
        "-m", "Review", "--agent", "reviewer", "--workspace-dir", str(workspace), "--model", "claude-other"
    )
    sent = fake.requests[0].body
    assert sent["system"] == f"Review code in {workspace.resolve()}." and sent["model"] == "claude-other"
    assert sorted(t["name"] for t in sent["tools"]) == [
        "notes__add",
        "notes__fail",
        "notes__sleep",
        "notes__whoami",
        "notes__write_note",
        "read_file",
    ]
    assert len(fake.requests) == 2 and events[-1]["stop_reason"] == "max_turns"
    first_result = next(e for e in events if e["type"] == "tool_result")
    assert json.loads(first_result["output"])["token_length"] == len(SECRET)
    assert UserAgentSession.objects.get().agent == agent


def test_resume_continues_the_session_with_its_whole_history(fake, admin, workspace):
    read = ToolUse("read_file", {"path": "README.md"})
    fake.script(
        Reply(tool_uses=[read], stop_reason="tool_use"), Reply(text=["It says hello."]), Reply(text=["Goodbye."])
    )
    first = json_run("-m", "What does the README say?", "--workspace-dir", str(workspace))
    session_id = first[0]["session_id"]
    second = json_run("--resume-session-id", str(session_id), "-m", "And now?", "--workspace-dir", str(workspace))
    assert second[0]["session_id"] == session_id and second[0]["resumed"] is True
    history = fake.requests[-1].body["messages"]
    assert [m["role"] for m in history] == ["user", "assistant", "user", "assistant", "user"]
    assert history[0]["content"] == [{"type": "text", "text": "What does the README say?"}]
    assert history[1]["content"][0]["id"] == read.id and history[2]["content"][0]["tool_use_id"] == read.id
    assert history[3]["content"] == [{"type": "text", "text": "It says hello."}]
    assert history[4]["content"] == [{"type": "text", "text": "And now?"}]
    assert UserAgentSession.objects.count() == 1 and Message.objects.count() == 6


def test_json_lines_parse_and_carry_the_whole_event_vocabulary(fake, admin, workspace):
    read = ToolUse("read_file", {"path": "README.md", "start_line": 1, "end_line": 1})
    fake.script(
        Reply(text=["Reading."], tool_uses=[read], stop_reason="tool_use"),
        Reply(thinking=["Hmm."], text=["It", " is a demo."]),
    )
    events = json_run("-m", "Read it", "--workspace-dir", str(workspace))
    kinds = [e["type"] for e in events]
    assert kinds == [
        "session",
        "text_delta",
        "tool_use",
        "tool_result",
        "thinking_delta",
        "text_delta",
        "text_delta",
        "result",
    ]
    assert [e["seq"] for e in events] == list(range(1, len(events) + 1))
    assert len({e["session_id"] for e in events}) == 1 and events[0]["session_id"]
    assert events[0]["agent"] == "orchestrator" and events[0]["model"] == "claude-test-1"
    assert events[2] == {**events[2], "id": read.id, "name": "read_file", "input": read.input}
    assert events[3] == {
        **events[3],
        "id": read.id,
        "name": "read_file",
        "is_error": False,
        "output": "     1\t# Demo\n… (1 more lines; read on with start_line=2)",
    }
    result = events[-1]
    assert (
        result["status"] == "complete"
        and result["stop_reason"] == "end_turn"
        and result["turns"] == 2
        and result["duration_ms"] >= 0
    )
    assert result["usage"]["input_tokens"] == 24


def test_the_message_can_come_from_a_file_or_stdin_and_the_system_prompt_from_a_file(
    fake, admin, workspace, tmp_path, monkeypatch
):
    (tmp_path / "task.md").write_text("From a file")
    (tmp_path / "system.md").write_text("You are terse.")
    run(
        "--message-file",
        str(tmp_path / "task.md"),
        "--system-prompt-file",
        str(tmp_path / "system.md"),
        "--workspace-dir",
        str(workspace),
    )
    monkeypatch.setattr(sys, "stdin", io.StringIO("From stdin"))
    run("--stdin", "--workspace-dir", str(workspace), "--max-turns", "1")
    assert fake.requests[0].body["messages"][0]["content"][0]["text"] == "From a file"
    assert fake.requests[0].body["system"] == "You are terse."
    assert fake.requests[1].body["messages"][0]["content"][0]["text"] == "From stdin"


def test_without_any_superuser_a_system_user_owns_the_session(fake, workspace):
    run("-m", "Hi", "--workspace-dir", str(workspace))
    assert UserAgentSession.objects.get().owner.email == "orchestrator@localhost"


def test_an_unreachable_model_fails_with_a_reason_and_the_turn_is_kept(fake, admin, workspace, settings):
    settings.ANTHROPIC_BASE_URL = "http://127.0.0.1:9"
    with pytest.raises(CommandError, match="^The model provider could not be reached.$"):
        run("-m", "Hi", "--workspace-dir", str(workspace))
    session = UserAgentSession.objects.get()
    assert stored(session) == [("user", ["text"], "complete"), ("assistant", [], "error")]
    assert session.messages.get(role="assistant").error_code == "upstream_unavailable"


def usage_of(message: Message) -> dict[str, int]:
    names = ("input_tokens", "output_tokens", "cache_read_input_tokens", "cache_creation_input_tokens")
    return {name: getattr(message, name) for name in names}


@pytest.mark.parametrize(
    ("cut", "code"),
    [({"error_after": 1}, "overloaded"), ({"drop_after": 1}, "upstream_unavailable")],
    ids=["error_event", "dropped"],
)
def test_an_answer_cut_short_after_a_tool_call_keeps_each_calls_usage(fake, admin, workspace, cut, code):
    tool_call = Reply(tool_uses=[ToolUse("list_directory", {"path": "."})], stop_reason="tool_use", input_tokens=21,
                      output_tokens=8, cache_read_input_tokens=2)  # fmt: skip
    cut_short = Reply(text=["Half", " lost"], input_tokens=64, start_output_tokens=3, cache_read_input_tokens=13,
                      cache_creation_input_tokens=6, **cut)  # fmt: skip
    fake.script(tool_call, cut_short)
    with pytest.raises(CommandError):
        run("-m", "Look around", "--workspace-dir", str(workspace))
    session = UserAgentSession.objects.get()
    assert stored(session) == [
        ("user", ["text"], "complete"),
        ("assistant", ["tool_use"], "complete"),
        ("user", ["tool_result"], "complete"),
        ("assistant", ["text"], "error"),
    ]
    finished, partial = session.messages.filter(role="assistant").order_by("seq")
    assert usage_of(finished) == {**tool_call.start_usage(), "output_tokens": tool_call.output_tokens}
    assert usage_of(partial) == cut_short.start_usage() and partial.content == [{"type": "text", "text": "Half"}]
    assert partial.error_code == code


class ListSink(EventSink):
    def __init__(self) -> None:
        super().__init__()
        self.events: list[dict] = []

    def write(self, event: dict) -> None:
        self.events.append(event)


def test_a_stopped_run_keeps_the_partial_answer_with_the_usage_known(fake, admin, workspace):
    reply = Reply(text=["par", "tial", " never"], pause_after=2, input_tokens=52, start_output_tokens=2,
                  cache_read_input_tokens=8, cache_creation_input_tokens=3)  # fmt: skip
    fake.script(reply)
    sink = ListSink()

    async def stop_mid_answer():
        run = asyncio.create_task(run_orchestrator(OrchestratorOptions("Long one", workspace=str(workspace)), sink))
        await asyncio.to_thread(fake.wait_until_paused)
        while len([e for e in sink.events if e["type"] == "text_delta"]) < 2:  # the client read both chunks
            await asyncio.sleep(0.01)
        run.cancel()  # what Ctrl-C does to the command's run
        with pytest.raises(asyncio.CancelledError):
            await run

    try:
        asyncio.run(stop_mid_answer())
    finally:
        fake.release()
    answer = UserAgentSession.objects.get().messages.get(role="assistant")
    assert answer.status == "stopped" and answer.content == [{"type": "text", "text": "partial"}]
    assert usage_of(answer) == reply.start_usage()


@pytest.mark.parametrize(
    ("arguments", "reason"),
    [
        (["-m", "   "], "the message is empty"),
        ([], "no message: give -m TEXT, --message-file PATH or --stdin"),
        (["-m", "x", "--mcp-config", "/nonexistent/mcp.json"], "MCP config file not found: /nonexistent/mcp.json"),
        (["-m", "x", "--mcp-config", "{bad}"], "MCP config file"),
        (["-m", "x", "--agent", "nobody"], "no organization agent with slug 'nobody'"),
        (["-m", "x", "--resume-session-id", "999999"], "no session with id 999999"),
        (["-m", "x", "--workspace-dir", "/nonexistent/dir"], "workspace directory does not exist: /nonexistent/dir"),
        (["-m", "x", "--allowed-tools", "teleport"], "--allowed-tools names unknown tools: teleport"),
        (["-m", "x", "--max-turns", "0"], "--max-turns must be at least 1"),
    ],
)
def test_bad_arguments_fail_with_a_one_line_reason(fake, admin, workspace, arguments, reason):
    if "--workspace-dir" not in arguments:
        arguments = [*arguments, "--workspace-dir", str(workspace)]
    with pytest.raises(CommandError) as error:
        run(*arguments)
    assert str(error.value).startswith(reason) and "\n" not in str(error.value)
    assert fake.requests == []


def test_a_missing_api_key_fails_before_any_request(fake, admin, workspace, settings):
    settings.ANTHROPIC_API_KEY = ""
    with pytest.raises(CommandError, match="^no API key for the model"):
        run("-m", "Hi", "--workspace-dir", str(workspace))
    assert fake.requests == []


def test_an_mcp_server_that_fails_to_start_fails_the_run_in_json_too(fake, admin, workspace, tmp_path):
    config = tmp_path / "broken.json"
    config.write_text(json.dumps({"broken": {"command": "/nonexistent/server", "env": {"TOKEN": SECRET}}}))
    out = io.StringIO()
    with pytest.raises(CommandError) as error:
        call_command(
            "run_orchestrator",
            "--json",
            "-m",
            "x",
            "--workspace-dir",
            str(workspace),
            "--mcp-config",
            str(config),
            stdout=out,
        )
    assert str(error.value) == "MCP server 'broken' failed to start: command not found: /nonexistent/server"
    last = json.loads(out.getvalue().splitlines()[-1])
    assert last["type"] == "error" and last["code"] == "mcp_start_failed" and SECRET not in out.getvalue()
    assert fake.requests == []


# --- as a real process ------------------------------------------------------------------------


def _database_url_for_child(tmp_path) -> str:
    """The child must reach a database that exists: the test database itself, or a migrated file."""
    db = connection.settings_dict
    if connection.vendor == "postgresql":
        return f"postgres://{db['USER']}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"
    return f"sqlite:///{tmp_path / 'child.sqlite3'}"


def manage(env: dict, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=settings.BASE_DIR,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def child_env(fake, tmp_path) -> dict:
    """The environment of a `manage.py` child process on its own database (migrated), using the fake model."""
    env = {
        **os.environ,
        "DATABASE_URL": _database_url_for_child(tmp_path),
        "ANTHROPIC_API_KEY": "sk-child-key",
        "ANTHROPIC_BASE_URL": fake.base_url,
        "ANTHROPIC_MODEL": "claude-test-1",
        "ANTHROPIC_MAX_RETRIES": "0",
    }
    if connection.vendor != "postgresql":
        assert manage(env, "migrate", "--noinput").returncode == 0
    return env


def test_it_runs_as_a_real_process_with_exit_codes_and_one_line_reasons(fake, workspace, mcp_config, tmp_path):
    env = child_env(fake, tmp_path)
    write, add = (
        ToolUse("write_file", {"path": "out.txt", "content": "from a child\n"}),
        ToolUse("notes__add", {"a": 20, "b": 22}),
    )
    fake.script(Reply(tool_uses=[write, add], stop_reason="tool_use"), Reply(text=["Done."]), Reply(text=["Again."]))

    first = manage(
        env,
        "run_orchestrator",
        "--json",
        "-m",
        "Write it",
        "--workspace-dir",
        str(workspace),
        "--mcp-config",
        str(mcp_config),
    )
    assert first.returncode == 0, first.stderr
    events = [json.loads(line) for line in first.stdout.splitlines()]
    assert [e["type"] for e in events][:1] + [e["type"] for e in events][-1:] == ["session", "result"]
    assert (workspace / "out.txt").read_text() == "from a child\n"
    assert fake.requests[1].body["messages"][2]["content"][1]["content"] == "42"
    sent = fake.requests[0].headers
    assert sent.get("x-api-key", sent.get("authorization")) in {"sk-child-key", "Bearer sk-child-key"}

    second = manage(
        env,
        "run_orchestrator",
        "--resume-session-id",
        str(events[0]["session_id"]),
        "-m",
        "Again",
        "--workspace-dir",
        str(workspace),
    )
    assert second.returncode == 0, second.stderr
    assert second.stdout.startswith("Again.\n") and second.stdout.rstrip().endswith(
        f"session: {events[0]['session_id']}"
    )
    assert [m["role"] for m in fake.requests[-1].body["messages"]] == ["user", "assistant", "user", "assistant", "user"]

    broken = manage(
        env,
        "run_orchestrator",
        "-m",
        "x",
        "--workspace-dir",
        str(workspace),
        "--mcp-config",
        str(tmp_path / "missing.json"),
    )
    assert broken.returncode == 1
    assert broken.stderr.strip().splitlines() == [f"error: MCP config file not found: {tmp_path / 'missing.json'}"]

    no_key = manage({**env, "ANTHROPIC_API_KEY": ""}, "run_orchestrator", "-m", "x", "--workspace-dir", str(workspace))
    assert no_key.returncode == 1 and no_key.stderr.strip().splitlines() == [
        "error: no API key for the model: set ANTHROPIC_API_KEY or give the agent an LLM config with a key. "
        "To try Conduit without a key, start it with `python3 dev.py run --demo` (a stand-in model)."
    ]
    assert len(fake.requests) == 3

    # Ctrl-C mid-answer: exit 130, the partial answer is kept as `stopped` and goes back on resume.
    fake.script(Reply(text=["par", "tial", " never"], pause_after=2), Reply(text=["Resumed."]))
    command = [
        sys.executable,
        "manage.py",
        "run_orchestrator",
        "--json",
        "-m",
        "Long one",
        "--workspace-dir",
        str(workspace),
    ]
    process = subprocess.Popen(
        command, cwd=settings.BASE_DIR, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        session_event = json.loads(process.stdout.readline())
        fake.wait_until_paused(30)
        while json.loads(process.stdout.readline())["text"] != "tial":
            pass
        process.send_signal(signal.SIGINT)
        _, stderr = process.communicate(timeout=30)
    finally:
        fake.release()
        if process.poll() is None:
            process.kill()
    session_id = session_event["session_id"]
    assert process.returncode == 130
    assert stderr.strip().splitlines() == [f"error: interrupted; continue with --resume-session-id {session_id}"]
    resumed = manage(
        env,
        "run_orchestrator",
        "--resume-session-id",
        str(session_id),
        "-m",
        "Go on",
        "--workspace-dir",
        str(workspace),
    )
    assert resumed.returncode == 0, resumed.stderr
    assert fake.requests[-1].body["messages"][-2:] == [
        {"role": "assistant", "content": [{"type": "text", "text": "partial"}]},
        {"role": "user", "content": [{"type": "text", "text": "Go on"}]},
    ]


def test_an_agent_whose_prompt_needs_missing_variables_fails_with_a_reason(fake, admin, workspace):
    AIAgent.objects.create(name="Jira", slug="jira", system_prompt_text="Work on {{ project }} in {{ workspace }}.")
    with pytest.raises(CommandError, match=r"^variables: Missing variable\(s\): project\.$"):
        run("-m", "Hi", "--agent", "jira", "--workspace-dir", str(workspace))
    assert fake.requests == [] and not UserAgentSession.objects.exists()


def _ignore_sigint() -> None:  # a parent that ignores SIGINT: a background job of a non-interactive shell, nohup
    signal.signal(signal.SIGINT, signal.SIG_IGN)


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_a_signal_stops_it_even_when_started_by_a_parent_that_ignores_sigint(fake, workspace, tmp_path, signum):
    env = child_env(fake, tmp_path)
    fake.script(Reply(text=["half", " an", " answer"], pause_after=1), Reply(text=["Resumed."]))
    command = [sys.executable, "manage.py", "run_orchestrator", "--json", "-m", "Long one", "--workspace-dir", str(workspace)]
    process = subprocess.Popen(
        command, cwd=settings.BASE_DIR, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        preexec_fn=_ignore_sigint,
    )  # fmt: skip
    try:
        session_id = json.loads(process.stdout.readline())["session_id"]
        fake.wait_until_paused(30)
        assert json.loads(process.stdout.readline())["text"] == "half"
        process.send_signal(signum)
        _, stderr = process.communicate(timeout=30)
    finally:
        fake.release()
        if process.poll() is None:
            process.kill()
    assert process.returncode == 130
    assert stderr.strip().splitlines() == [f"error: interrupted; continue with --resume-session-id {session_id}"]
    # The partial answer was kept (as `stopped`): it goes back to the model on resume.
    resumed = manage(env, "run_orchestrator", "--resume-session-id", str(session_id), "-m", "Go on",
                     "--workspace-dir", str(workspace))  # fmt: skip
    assert resumed.returncode == 0, resumed.stderr
    assert fake.requests[-1].body["messages"][-2:] == [
        {"role": "assistant", "content": [{"type": "text", "text": "half"}]},
        {"role": "user", "content": [{"type": "text", "text": "Go on"}]},
    ]
