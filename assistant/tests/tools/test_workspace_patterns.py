"""grep and glob with hostile patterns (issue 33, item 1): RE2 matches in linear time and lets go of the
interpreter, and walks are bounded, so a pattern that backtracks for minutes in Python's `re` neither freezes
the process nor holds its call; what RE2 can't take is an error the model reads."""

from __future__ import annotations

import asyncio
import os
import time

import pytest

from assistant.engine import ToolCall
from assistant.tools.workspace import BuiltinTools, Workspace


@pytest.fixture
def root(tmp_path):
    directory = tmp_path / "ws"
    directory.mkdir()
    return directory


@pytest.fixture
def tools(root):
    return BuiltinTools(Workspace(root), shell_timeout=5, output_limit=5000, shell_env={})


async def call(tools, name, **arguments):
    return await tools.run(ToolCall("toolu_1", name, arguments))


async def timed_with_the_loop_watched(awaitable) -> tuple[object, float, float]:
    """(result, seconds taken, longest the event loop went without running a ready task)."""
    gaps = [0.0]

    async def ticker():
        last = time.monotonic()
        while True:
            await asyncio.sleep(0.02)
            now = time.monotonic()
            gaps.append(now - last - 0.02)
            last = now

    watching = asyncio.create_task(ticker())
    await asyncio.sleep(0)
    started = time.monotonic()
    try:
        result = await awaitable
    finally:
        watching.cancel()
    return result, time.monotonic() - started, max(gaps)


async def test_a_catastrophic_regex_over_an_upload_neither_freezes_the_process_nor_takes_long(tools, root):
    """The issue's attack: `(a+)+$` over "a" * 27 + "!" held Python's `re`, GIL included, for ~15 s."""
    (root / "upload.txt").write_text("a" * 27 + "!\n")
    outcome, seconds, longest_stall = await timed_with_the_loop_watched(call(tools, "grep", pattern="(a+)+$"))
    assert outcome.is_error is False and outcome.content == "No matches."
    assert seconds < 3 and longest_stall < 1  # Python's re: ~15 s, the loop frozen throughout


@pytest.mark.parametrize(
    "pattern",
    ["(a+)+$", "(a|aa)+$", "(a*)*b", "(.*a){20}", "^(([a-z])+.)+[A-Z]([a-z])+$", "(x+x+)+y", "(\\w+\\s?)+$"],
)
async def test_backtracking_patterns_run_in_linear_time_over_long_lines(tools, root, pattern):
    (root / "hostile.txt").write_text(("a" * 64 + "!\n") * 50 + "x" * 5000 + "\n" + "word " * 2000 + "!\n")
    outcome, seconds, longest_stall = await timed_with_the_loop_watched(call(tools, "grep", pattern=pattern))
    assert outcome.is_error is False, outcome.content
    assert seconds < 3 and longest_stall < 1


@pytest.mark.parametrize(
    ("pattern", "named"),
    [
        ("(a)\\1", "backreferences"),
        ("(?P<x>a)(?P=x)", "backreferences"),
        ("foo(?=bar)", "lookahead"),
        ("foo(?!bar)", "negative lookahead"),
        ("(?<=a)b", "lookbehind"),
        ("(?<!a)b", "negative lookbehind"),
        ("(?>a+)b", "atomic groups"),
        ("a*+b", "possessive quantifiers"),
        ("end\\Z", "\\Z (use $)"),
    ],
)
async def test_what_re2_cant_do_is_an_error_naming_it(tools, root, pattern, named):
    (root / "a.txt").write_text("aa foobar\n")
    outcome = await call(tools, "grep", pattern=pattern)
    assert outcome.is_error is True
    assert outcome.content.startswith(f"Unsupported in the pattern: {named}")
    assert "RE2 syntax" in outcome.content


async def test_grep_keeps_its_meaning_lines_flags_and_filters(tools, root):
    (root / "src").mkdir()
    (root / "src" / "app.py").write_text("def Hello():\r\n    return 'hello'\r\n\nx = 42  # end\n")
    (root / "notes.md").write_text("hello there\nnothing\n")
    (root / "data.bin").write_bytes(b"hello\x00\x01")
    assert (
        await call(tools, "grep", pattern="hello")
    ).content == "notes.md:1: hello there\nsrc/app.py:2:     return 'hello'"
    assert (await call(tools, "grep", pattern="HELLO", case_insensitive=True)).content.count("\n") == 2
    assert (await call(tools, "grep", pattern="(?i)^def hello\\(\\):$")).content == "src/app.py:1: def Hello():"
    assert (await call(tools, "grep", pattern="^$", path="src")).content == "src/app.py:3: "
    assert (await call(tools, "grep", pattern="(?P<n>\\d+)\\s+#", glob="*.py")).content == "src/app.py:4: x = 42  # end"
    assert (await call(tools, "grep", pattern="hello", glob="src/*")).content == "src/app.py:2:     return 'hello'"
    # A match never spans two lines, whatever the pattern allows (\s, [^x]).
    assert (await call(tools, "grep", pattern="there\\snothing")).content == "No matches."
    assert (await call(tools, "grep", pattern="there[^x]nothing")).content == "No matches."


@pytest.mark.parametrize("pattern", ["\\Afoo", "foo\\z", "a\\Cb"])
async def test_what_would_mean_the_whole_file_is_refused_not_misread(tools, root, pattern):
    (root / "a.txt").write_text("foo\nafb\n")
    outcome = await call(tools, "grep", pattern=pattern)
    assert outcome.is_error is True and "Unsupported in the pattern" in outcome.content


async def test_nested_double_stars_dont_walk_the_tree_once_per_star(tools, root):
    """pathlib's glob walks everything under each `**` again: four over a chain of 60 directories took 13 s."""
    deep = root.joinpath(*["d"] * 60)
    deep.mkdir(parents=True)
    (deep / "x").write_text("found\n")
    outcome, seconds, _ = await timed_with_the_loop_watched(call(tools, "glob", pattern="**/**/**/**/x"))
    assert outcome.content == "/".join(["d"] * 60) + "/x"
    assert seconds < 2


@pytest.mark.parametrize("pattern", ["*a*a*a*a*a*a*a*a*a*a*b", "*" + "?*" * 40 + "b", "[a-z]*" * 30 + "!"])
async def test_backtracking_globs_stay_fast_in_glob_and_in_grep_filters(tools, root, pattern):
    (root / ("a" * 250)).write_text("a\n")
    (root / ("a" * 120)).mkdir()
    (root / ("a" * 120) / ("a" * 250)).write_text("a\n")
    outcome, seconds, _ = await timed_with_the_loop_watched(call(tools, "glob", pattern=pattern))
    assert outcome.content == "No files match." and seconds < 2
    outcome, seconds, _ = await timed_with_the_loop_watched(call(tools, "grep", pattern="a", glob=pattern))
    assert outcome.content == "No matches." and seconds < 2


async def test_glob_keeps_its_meaning(tools, root):
    (root / "src" / "pkg").mkdir(parents=True)
    (root / "node_modules").mkdir()
    for name in (
        "src/app.py",
        "src/pkg/mod.py",
        "src/pkg/data.txt",
        "setup.py",
        ".hidden.py",
        "b.py",
        "node_modules/d.py",
    ):
        (root / name).write_text("x\n")
    assert (await call(tools, "glob", pattern="**/*.py")).content.splitlines() == [
        ".hidden.py", "b.py", "setup.py", "src/app.py", "src/pkg/mod.py"
    ]  # fmt: skip
    assert (await call(tools, "glob", pattern="*.py")).content.splitlines() == [".hidden.py", "b.py", "setup.py"]
    assert (await call(tools, "glob", pattern="src/*")).content.splitlines() == ["src/app.py", "src/pkg"]
    assert (await call(tools, "glob", pattern="src/**")).content.splitlines() == ["src", "src/pkg"]
    assert (await call(tools, "glob", pattern="[!bs]*.py")).content == ".hidden.py"
    assert (await call(tools, "glob", pattern="*.py", path="src/pkg")).content == "src/pkg/mod.py"
    assert (await call(tools, "glob", pattern="?.py")).content == "b.py"


async def test_a_search_over_too_many_entries_stops_and_says_so(tools, root, monkeypatch):
    from assistant.tools import search

    monkeypatch.setattr(search, "WALK_MAX_ENTRIES", 50)
    for index in range(80):
        (root / f"f{index:03}.txt").write_text("needle\n")
    grep = await call(tools, "grep", pattern="needle")
    assert grep.content.endswith("… (stopped after looking at 50 entries)") and grep.content.count("needle") == 50
    assert (await call(tools, "glob", pattern="*.txt")).content.endswith("… (stopped after looking at 50 entries)")


async def test_names_that_are_not_utf8_are_still_found(tools, root):
    os.mkdir(os.fsencode(root) + b"/caf\xe9")
    (root / os.fsdecode(b"caf\xe9") / "menu.txt").write_text("espresso\n")
    assert "menu.txt" in (await call(tools, "glob", pattern="*/menu.txt")).content
    assert "espresso" in (await call(tools, "grep", pattern="espresso", glob="*.txt")).content
