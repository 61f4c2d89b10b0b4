"""The file tools' patterns, run by RE2: grep's regular expressions and glob patterns.

Python's `re` backtracks: `(a+)+$` over thirty characters holds the interpreter, GIL included, for minutes,
and nothing (a timeout, SIGTERM) gets a word in. RE2 matches in time linear in the text — times the size of
the pattern's program, the worst case when its DFA gives up — and releases the GIL while it runs, so a
hostile pattern costs only its own call, and `search_lines` bounds each call's work so that a call can be
abandoned between two. What RE2 can't do (backreferences, lookaround, atomic groups, possessive
quantifiers) is refused with a message naming it, which the model reads.

Glob patterns are translated to RE2 too, instead of fnmatch (Python's `re`) and pathlib's glob, which walks
the tree once more for each `**` (`**/**/**/**/x` over a chain of 60 directories took 13 s).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import re2

from assistant.tools.files import ToolError

MAX_PATTERN_CHARS = 1000
# Worst-case work of one RE2 call, in (bytes × program instructions): about a second at the ~150 M
# steps/s its NFA manages here. Text is searched in chunks of whole lines that keep under it.
MAX_STEPS_PER_CALL = 2**27


class PatternError(ToolError):
    """A pattern the tools can't use; the message says why, for the model."""


def _options(*, case_sensitive: bool = True, lines: bool = False) -> Any:
    options = re2.Options()
    options.log_errors = False  # RE2 would log every refused pattern to stderr
    options.case_sensitive = case_sensitive
    if lines:
        # No match may contain a newline, whatever the pattern says (`\s`, `[^x]`): one search over a
        # whole file then finds the same lines as a search of each line on its own.
        options.never_nl = True
        options.never_capture = True
    return options


_UNSUPPORTED = [
    ("invalid perl operator: (?=", "lookahead ((?=…))"),
    ("invalid perl operator: (?!", "negative lookahead ((?!…))"),
    ("invalid perl operator: (?<=", "lookbehind ((?<=…))"),
    ("invalid perl operator: (?<!", "negative lookbehind ((?<!…))"),
    ("invalid perl operator: (?>", "atomic groups ((?>…))"),
    ("invalid perl operator: (?#", "comments ((?#…))"),
    ("invalid perl operator: (?x", "verbose mode ((?x))"),
    ("bad repetition operator: *+", "possessive quantifiers (*+, ++, ?+)"),
    ("bad repetition operator: ++", "possessive quantifiers (*+, ++, ?+)"),
    ("bad repetition operator: ?+", "possessive quantifiers (*+, ++, ?+)"),
    ("invalid escape sequence: \\Z", "\\Z (use $)"),
]
_SYNTAX = (
    "grep uses RE2 syntax: Python's without backreferences, lookahead or lookbehind, atomic groups or "
    "possessive quantifiers; each line is matched on its own (^ and $ are its start and end)"
)


def _refusal(exc: Exception, pattern: str) -> str:
    detail = exc.args[0] if exc.args else ""
    detail = detail.decode(errors="replace") if isinstance(detail, bytes) else str(detail)
    backreference = detail.startswith("invalid escape sequence: \\") and detail[-1:].isdigit()
    if backreference or (detail == "invalid perl operator: (?P" and "(?P=" in pattern):
        return f"Unsupported in the pattern: backreferences (\\1, (?P=name)). {_SYNTAX}."
    for prefix, feature in _UNSUPPORTED:
        if detail.startswith(prefix):
            return f"Unsupported in the pattern: {feature}. {_SYNTAX}."
    return f"Invalid regular expression: {detail}. {_SYNTAX}."


def _escapes(pattern: str) -> Iterator[str]:
    index = 0
    while index < len(pattern) - 1:
        if pattern[index] == "\\":
            yield pattern[index + 1]
            index += 2
        else:
            index += 1


@dataclass(frozen=True)
class LinePattern:
    """A compiled grep pattern. `cost`: its program's instructions, the worst-case work per byte."""

    regex: Any
    cost: int


def line_pattern(pattern: str, *, case_insensitive: bool = False) -> LinePattern:
    """`pattern` compiled for `search_lines`, or PatternError saying what RE2 can't take."""
    if len(pattern) > MAX_PATTERN_CHARS:
        raise PatternError(f"The pattern is longer than {MAX_PATTERN_CHARS} characters.")
    # Whole files are searched at once with ^ and $ at line ends: what means "start/end of the text"
    # or "any byte" would break the one-line-at-a-time meaning, so it is refused rather than misread.
    for letter, feature in (("A", "\\A (use ^)"), ("z", "\\z (use $)"), ("C", "\\C (use .)")):
        if letter in _escapes(pattern):
            raise PatternError(f"Unsupported in the pattern: {feature}. {_SYNTAX}.")
    try:
        regex = re2.compile("(?m)" + pattern, _options(case_sensitive=not case_insensitive, lines=True))
    except re2.error as exc:
        raise PatternError(_refusal(exc, pattern)) from None
    except UnicodeEncodeError:
        raise PatternError("The pattern is not valid Unicode text.") from None
    return LinePattern(regex, max(1, regex.programsize))


@dataclass
class SearchBudget:
    """`check()` raises to stop a search (its caller's timeout, a deadline); skipped lines are counted."""

    check: Callable[[], None]
    lines_too_long: int = 0


def search_lines(data: bytes, pattern: LinePattern, budget: SearchBudget) -> Iterator[tuple[int, bytes]]:
    """(1-based number, text) of each line of `data` that matches, in order; lines end at b"\\n".

    The text is searched in chunks of whole lines, each within MAX_STEPS_PER_CALL for this pattern;
    between two, `budget.check()` may stop the search. A line longer than a chunk can be is skipped
    and counted in `budget.lines_too_long` (only a pattern with a large program meets one)."""
    chunk = max(1, MAX_STEPS_PER_CALL // pattern.cost)
    size = len(data)
    position, number = 0, 1
    while position < size:
        budget.check()
        end = size if size - position <= chunk else data.rfind(b"\n", position, position + chunk) + 1
        if end <= position:  # not one whole line fits: the line starting here is too long for one call
            line_end = data.find(b"\n", position) + 1 or size
            budget.lines_too_long += 1
            position, number = line_end, number + 1
            continue
        match = pattern.regex.search(data, position, end)
        # An empty match where the chunk ends belongs to the next line, if there is one (not after a
        # final newline: Python's splitlines, which grep used to follow, has no line there).
        if match is None or (match.start() == end and (end < size or data.endswith(b"\n"))):
            number += data.count(b"\n", position, end)
            position = end
            continue
        line_start = max(position, data.rfind(b"\n", position, match.start()) + 1)
        number += data.count(b"\n", position, line_start)
        line_end = data.find(b"\n", match.start())
        line_end = size if line_end < 0 else line_end
        yield number, data[line_start:line_end]
        position, number = line_end + 1, number + 1


# --- glob patterns ------------------------------------------------------------------------------


@dataclass(frozen=True)
class GlobPattern:
    """A glob over paths relative to the search's directory (`matches`); `directories_only` when it ends
    in `**` (as pathlib: the directories under a path); `max_depth` is None when `**` may go any depth."""

    regex: Any
    directories_only: bool
    max_depth: int | None

    def matches(self, relative_path: str) -> bool:
        return self.regex.fullmatch(_matchable(relative_path) + b"/") is not None


def _matchable(text: str) -> bytes:
    # Names that aren't UTF-8 come from os.scandir with surrogate escapes; RE2 matches valid UTF-8
    # only, so they are matched with a replacement character where their odd bytes are.
    return text.encode("utf-8", errors="replace")


def _translate(part: str, *, any_chars: str, one_char: str, negated_class: str) -> str:
    """fnmatch's syntax (`*`, `?`, `[seq]`, `[!seq]`) as RE2; everything else literal."""
    out: list[str] = []
    index, size = 0, len(part)
    while index < size:
        char = part[index]
        index += 1
        if char == "*":
            if not out or out[-1] != any_chars:  # `**` inside a name is `*`; and keeps the program small
                out.append(any_chars)
        elif char == "?":
            out.append(one_char)
        elif char == "[":
            end = index + (index < size and part[index] == "!")
            end += end < size and part[end] == "]"
            while end < size and part[end] != "]":
                end += 1
            if end >= size:
                out.append("\\[")
                continue
            body, index = part[index:end], end + 1
            negate = body.startswith("!")
            body = "".join("\\" + c if c in "\\[]^" else c for c in (body[1:] if negate else body))
            out.append(f"[{negated_class}{body}]" if negate else f"[{body}]")
        else:
            out.append("\\" + char if char.isascii() and not char.isalnum() else char)
    return "".join(out)


def _compile_glob(source: str, original: str) -> Any:
    try:
        return re2.compile(source, _options())
    except re2.error as exc:
        detail = exc.args[0].decode(errors="replace") if exc.args and isinstance(exc.args[0], bytes) else str(exc)
        raise PatternError(f"Invalid glob pattern {original!r}: {detail}.") from None
    except UnicodeEncodeError:
        raise PatternError("The glob pattern is not valid Unicode text.") from None


def _check_glob(pattern: str) -> None:
    if len(pattern) > MAX_PATTERN_CHARS:
        raise PatternError(f"The glob pattern is longer than {MAX_PATTERN_CHARS} characters.")
    if "\x00" in pattern:
        raise PatternError("The glob pattern contains a NUL character.")


def glob_pattern(pattern: str) -> GlobPattern:
    """A pathlib-style glob: `*`, `?` and `[…]` within one path component, `**` for any number of
    directories (zero included). Matching is linear in the path's length."""
    _check_glob(pattern)
    parts = [part for part in pattern.split("/") if part not in ("", ".")]
    if not parts:
        raise PatternError("The glob pattern is empty.")
    source = "".join(
        "(?:[^/]+/)*"
        if part == "**"
        else _translate(part, any_chars="[^/]*", one_char="[^/]", negated_class="^/") + "/"
        for part in parts
    )
    depth = None if "**" in parts else len(parts)
    return GlobPattern(_compile_glob(source, pattern), directories_only=parts[-1] == "**", max_depth=depth)


class NameGlob:
    """fnmatch's meaning (grep's `glob` filter): `*` matches any characters, `/` included."""

    def __init__(self, pattern: str):
        _check_glob(pattern)
        self.regex = _compile_glob(
            "(?s)" + _translate(pattern, any_chars=".*", one_char=".", negated_class="^"), pattern
        )

    def matches(self, text: str) -> bool:
        return self.regex.fullmatch(_matchable(text)) is not None
