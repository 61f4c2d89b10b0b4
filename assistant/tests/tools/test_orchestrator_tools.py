"""The orchestrator's built-in tools: they really change files, and never outside the workspace."""

from __future__ import annotations

import os
import time

import pytest

from assistant.engine import ToolCall
from assistant.tools.workspace import BuiltinTools, Workspace


@pytest.fixture
def outside(tmp_path):
    directory = tmp_path / "outside"
    directory.mkdir()
    (directory / "secret.txt").write_text("top secret\n")
    return directory


@pytest.fixture
def root(tmp_path):
    directory = tmp_path / "ws"
    directory.mkdir()
    (directory / "src").mkdir()
    (directory / "src" / "app.py").write_text("def hello():\n    return 'hello'\n\n\ndef bye():\n    return 'bye'\n")
    (directory / "README.md").write_text("# Demo\nSay hello.\n")
    return directory


@pytest.fixture
def tools(root):
    return BuiltinTools(Workspace(root), shell_timeout=5, output_limit=2000, shell_env={"PATH": os.environ["PATH"]})


async def call(tools, name, **arguments):
    return await tools.run(ToolCall("toolu_1", name, arguments))


async def test_read_file_numbers_lines_and_reads_a_range(tools):
    whole = await call(tools, "read_file", path="src/app.py")
    assert not whole.is_error and "     1\tdef hello():" in whole.content
    part = await call(tools, "read_file", path="src/app.py", start_line=5, end_line=5)
    assert part.content == "     5\tdef bye():\n… (1 more lines; read on with start_line=6)"


async def test_write_file_creates_the_file_and_its_directories(tools, root):
    outcome = await call(tools, "write_file", path="docs/new/guide.md", content="# Guide\n")
    assert not outcome.is_error and "Created docs/new/guide.md" in outcome.content
    assert (root / "docs" / "new" / "guide.md").read_text() == "# Guide\n"


async def test_edit_file_replaces_an_exact_unique_string(tools, root):
    outcome = await call(
        tools, "edit_file", path="src/app.py", old_string="return 'bye'", new_string="return 'goodbye'"
    )
    assert not outcome.is_error
    assert "return 'goodbye'" in (root / "src" / "app.py").read_text()


async def test_edit_file_refuses_an_ambiguous_or_missing_string(tools, root):
    before = (root / "src" / "app.py").read_text()
    ambiguous = await call(tools, "edit_file", path="src/app.py", old_string="return", new_string="yield")
    missing = await call(tools, "edit_file", path="src/app.py", old_string="nowhere", new_string="x")
    assert ambiguous.is_error and "occurs 2 times" in ambiguous.content
    assert missing.is_error and "not found" in missing.content
    assert (root / "src" / "app.py").read_text() == before
    every = await call(tools, "edit_file", path="src/app.py", old_string="return", new_string="yield", replace_all=True)
    assert not every.is_error and (root / "src" / "app.py").read_text().count("yield") == 2


async def test_list_glob_and_grep_find_what_is_there(tools):
    listing = await call(tools, "list_directory")
    assert listing.content.splitlines()[0].startswith("README.md") and "src/" in listing.content
    assert (await call(tools, "glob", pattern="**/*.py")).content == "src/app.py"
    grep = await call(tools, "grep", pattern="hello", glob="*.py")
    assert grep.content == "src/app.py:1: def hello():\nsrc/app.py:2:     return 'hello'"
    assert (await call(tools, "grep", pattern="HELLO", case_insensitive=True)).content.count("\n") == 2


@pytest.mark.parametrize(
    ("name", "arguments"),
    [
        ("read_file", {"path": "../outside/secret.txt"}),
        ("read_file", {"path": "src/../../outside/secret.txt"}),
        ("read_file", {"path": "/etc/passwd"}),
        ("write_file", {"path": "../outside/evil.txt", "content": "x"}),
        ("write_file", {"path": "/tmp/conduit-evil.txt", "content": "x"}),
        ("edit_file", {"path": "../outside/secret.txt", "old_string": "top", "new_string": "no"}),
        ("list_directory", {"path": ".."}),
        ("grep", {"pattern": "secret", "path": "../outside"}),
        ("glob", {"pattern": "../outside/*"}),
        ("glob", {"pattern": "/etc/*"}),
    ],
)
async def test_paths_that_leave_the_workspace_are_refused(tools, outside, name, arguments):
    outcome = await call(tools, name, **arguments)
    assert outcome.is_error
    assert "outside the workspace" in outcome.content or "may not contain '..'" in outcome.content
    assert sorted(p.name for p in outside.iterdir()) == ["secret.txt"]
    assert (outside / "secret.txt").read_text() == "top secret\n"
    assert not os.path.exists("/tmp/conduit-evil.txt")


async def test_symlinks_pointing_out_are_refused_for_reading_and_writing(tools, root, outside):
    (root / "etc_link").symlink_to("/etc")
    (root / "out_dir").symlink_to(outside)
    (root / "secret_link.txt").symlink_to(outside / "secret.txt")
    (root / "dangling.txt").symlink_to(outside / "not-yet.txt")
    attempts = [
        ("read_file", {"path": "etc_link/passwd"}),
        ("read_file", {"path": "secret_link.txt"}),
        ("write_file", {"path": "secret_link.txt", "content": "overwritten"}),
        ("write_file", {"path": "out_dir/planted.txt", "content": "x"}),
        ("write_file", {"path": "dangling.txt", "content": "x"}),
        ("edit_file", {"path": "out_dir/secret.txt", "old_string": "top", "new_string": "no"}),
        ("list_directory", {"path": "out_dir"}),
    ]
    for name, arguments in attempts:
        outcome = await call(tools, name, **arguments)
        assert outcome.is_error and "outside the workspace" in outcome.content, (name, arguments, outcome)
    assert sorted(p.name for p in outside.iterdir()) == ["secret.txt"]
    assert (outside / "secret.txt").read_text() == "top secret\n"
    # Searching never follows them out either.
    assert "secret" not in (await call(tools, "grep", pattern="top secret")).content
    assert (await call(tools, "glob", pattern="**/*.txt")).content == "No files match."


async def test_a_symlink_inside_the_workspace_is_fine(tools, root):
    (root / "app_link.py").symlink_to(root / "src" / "app.py")
    assert "def hello" in (await call(tools, "read_file", path="app_link.py")).content
    assert not (await call(tools, "read_file", path=str(root / "src" / "app.py"))).is_error


async def test_the_shell_runs_in_the_workspace_with_a_filtered_environment(tools, root, monkeypatch):
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-must-not-leak")
    outcome = await call(tools, "run_shell", command="pwd; echo key=${ANTHROPIC_API_KEY:-none}; echo made > made.txt")
    assert not outcome.is_error
    assert outcome.content.splitlines() == [str(root.resolve()), "key=none"]
    assert (root / "made.txt").read_text() == "made\n"


async def test_a_failing_command_is_an_error_with_its_exit_code_and_output(tools):
    outcome = await call(tools, "run_shell", command="echo oops >&2; exit 3")
    assert outcome.is_error and outcome.content == "Exit code 3\noops"


async def test_a_command_that_runs_too_long_is_killed_with_its_children(tools, root):
    started = time.monotonic()
    outcome = await call(
        tools, "run_shell", command="(sleep 30; echo late > late.txt) & echo started; sleep 30", timeout=1
    )
    assert (
        outcome.is_error and outcome.content.startswith("Command timed out after 1 s") and "started" in outcome.content
    )
    assert time.monotonic() - started < 10
    assert not (root / "late.txt").exists()


async def test_long_output_is_capped_with_a_note(tools):
    outcome = await call(tools, "run_shell", command="python3 -c \"print('x' * 10000)\"")
    assert len(outcome.content) < 2100 and "output truncated" in outcome.content


async def test_bad_input_and_unknown_tools_are_errors_the_model_reads(tools):
    assert (await call(tools, "read_file")).content == "Missing required input: path."
    assert (await call(tools, "read_file", path="README.md", colour="red")).is_error
    assert (await call(tools, "read_file", path=5)).content == "Input path must be a string."
    assert (await call(tools, "read_file", path="nope.txt")).content == "No such file or directory: nope.txt"
    unknown = await call(tools, "launch_rockets")
    assert unknown.is_error and unknown.content == "Unknown tool: launch_rockets"


def test_a_path_outside_the_workspace_is_refused_without_naming_where_the_workspace_lives(tmp_path):
    from assistant.tools.workspace import ToolError, Workspace

    workspace = Workspace(tmp_path)
    with pytest.raises(ToolError) as refused:
        workspace.resolve("../../etc/passwd")
    assert str(refused.value) == "Path is outside the workspace: ../../etc/passwd (give paths relative to the workspace root)."
    assert str(tmp_path) not in str(refused.value)
