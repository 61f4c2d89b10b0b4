"""list_directory, glob and grep: bounded walks of a workspace that only ever open regular files.

Every walk stops after a number of entries, a search after a number of files and bytes and SEARCH_SECONDS,
and each checks its Stop between files and chunks, so an abandoned call ends soon. Directories named in
SKIPPED_DIRS and symlinked directories are not walked into (a symlink loop, or a link out of the workspace);
FIFOs, sockets and devices are never opened, and grep and glob leave them out.
"""

from __future__ import annotations

import os
import stat
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from assistant.tools.files import NotRegular, ToolError, Workspace, kind_of, open_for_reading, read_at_most
from assistant.tools.patterns import GlobPattern, LinePattern, NameGlob, SearchBudget, search_lines
from assistant.tools.threads import Stop

LIST_MAX_ENTRIES = 1000  # shown
LIST_MAX_READ = 20_000  # read from the directory, of which the first LIST_MAX_ENTRIES by name are shown
WALK_MAX_ENTRIES = 100_000  # entries a glob or grep looks at
GLOB_MAX_RESULTS = 1000
GREP_MAX_MATCHES = 200
GREP_MAX_FILE_BYTES = 5 * 1024 * 1024  # larger files are not searched
GREP_MAX_FILES = 20_000
GREP_MAX_BYTES = 64 * 1024 * 1024  # searched in all
SEARCH_SECONDS = 20.0
SKIPPED_DIRS = {".git", ".hg", ".svn", "__pycache__", "node_modules", ".venv", ".mypy_cache", ".pytest_cache"}


def list_directory(workspace: Workspace, directory: Path, label: str, stop: Stop) -> str:
    if not directory.is_dir():
        raise ToolError(f"Not a directory: {label}")
    with os.scandir(directory) as scan:
        entries = []
        for entry in scan:
            entries.append(entry)
            if len(entries) >= LIST_MAX_READ:
                break
        more = next(scan, None) is not None
    entries.sort(key=lambda e: e.name)
    lines = []
    for entry in entries[:LIST_MAX_ENTRIES]:
        status = entry.stat(follow_symlinks=False)  # stat, never open: safe on a FIFO
        if stat.S_ISLNK(status.st_mode):
            lines.append(f"{entry.name} -> {os.readlink(entry.path)}")
        elif stat.S_ISDIR(status.st_mode):
            lines.append(f"{entry.name}/")
        elif stat.S_ISREG(status.st_mode):
            lines.append(f"{entry.name}  ({status.st_size} bytes)")
        else:  # shown, so that the model knows why the file tools refuse it
            lines.append(f"{entry.name}  ({kind_of(status.st_mode)})")
    if len(entries) > LIST_MAX_ENTRIES or more:
        counted = f"{len(entries)}" if not more else f"more than {LIST_MAX_READ}"
        lines.append(f"… ({counted} entries; the first {LIST_MAX_ENTRIES} by name are shown)")
    return "\n".join(lines) if lines else "(empty directory)"


@dataclass
class _Walk:
    """What a walk may still look at; `stopped` says why it ended early, if it did."""

    stop: Stop
    deadline: float
    entries: int = field(default_factory=lambda: WALK_MAX_ENTRIES)
    stopped: str = ""

    def check(self) -> None:
        self.stop.check()
        if time.monotonic() > self.deadline:
            self.stopped = self.stopped or f"stopped after {SEARCH_SECONDS:g} s"
            raise _Exhausted


class _Exhausted(Exception):
    pass


def _walk(base: Path, walk: _Walk, max_depth: int | None = None) -> Iterator[tuple[str, os.DirEntry, os.stat_result]]:
    """(path relative to `base`, entry, lstat) of what is under `base`, depth first, by name; symlinked
    directories are not entered, SKIPPED_DIRS left out."""
    pending: list[tuple[Path, str, int]] = [(base, "", 1)]
    while pending:
        directory, prefix, depth = pending.pop()
        walk.check()
        try:
            with os.scandir(directory) as scan:
                entries = []
                for entry in scan:
                    if walk.entries <= 0:
                        walk.stopped = walk.stopped or f"stopped after looking at {WALK_MAX_ENTRIES} entries"
                        break
                    walk.entries -= 1
                    entries.append(entry)
        except OSError:
            continue  # gone, or not readable: nothing to find there
        entries.sort(key=lambda e: e.name)
        below = []
        for entry in entries:
            try:
                status = entry.stat(follow_symlinks=False)
            except OSError:
                continue
            is_directory = stat.S_ISDIR(status.st_mode)
            if is_directory and entry.name in SKIPPED_DIRS:
                continue
            relative = prefix + entry.name
            yield relative, entry, status
            if is_directory and (max_depth is None or depth < max_depth):
                below.append((Path(entry.path), relative + "/", depth + 1))
        pending.extend(reversed(below))
        if walk.stopped:
            return


def _target(workspace: Workspace, entry: os.DirEntry, status: os.stat_result) -> tuple[Path, os.stat_result] | None:
    """(real path, lstat) of what `entry` is: a symlink followed only when it lands inside the workspace."""
    if not stat.S_ISLNK(status.st_mode):
        return Path(entry.path), status
    real = Path(os.path.realpath(entry.path))
    if not real.is_relative_to(workspace.root):
        return None
    try:
        return real, os.lstat(real)
    except OSError:
        return None


def glob(workspace: Workspace, base: Path, pattern: GlobPattern, stop: Stop) -> str:
    walk = _Walk(stop, time.monotonic() + SEARCH_SECONDS)
    matches: list[str] = []
    try:
        for relative, entry, status in _walk(base, walk, pattern.max_depth):
            if not pattern.matches(relative):
                continue
            target = _target(workspace, entry, status)
            if target is None or not (stat.S_ISREG(target[1].st_mode) or stat.S_ISDIR(target[1].st_mode)):
                continue  # a link out of the workspace; a FIFO, socket or device
            if pattern.directories_only and not stat.S_ISDIR(target[1].st_mode):
                continue
            matches.append(workspace.relative(Path(entry.path)))
            if len(matches) >= GLOB_MAX_RESULTS:
                walk.stopped = f"stopped at {GLOB_MAX_RESULTS} matches"
                break
    except _Exhausted:
        pass
    if not matches:
        return "No files match." + (f" (The search {walk.stopped}.)" if walk.stopped else "")
    return "\n".join(sorted(matches)) + (f"\n… ({walk.stopped})" if walk.stopped else "")


def grep(workspace: Workspace, base: Path, pattern: LinePattern, include: NameGlob | None, stop: Stop) -> str:
    walk = _Walk(stop, time.monotonic() + SEARCH_SECONDS)
    budget = SearchBudget(walk.check)
    found: list[str] = []
    too_large = files = searched = 0
    try:
        for path, real, status in _grep_candidates(workspace, base, walk):
            relative = workspace.relative(path)
            if include is not None and not (include.matches(path.name) or include.matches(relative)):
                continue
            if status.st_size > GREP_MAX_FILE_BYTES:
                too_large += 1
                continue
            if files >= GREP_MAX_FILES or searched + status.st_size > GREP_MAX_BYTES:
                walk.stopped = f"stopped after searching {files} files ({searched} bytes)"
                break
            data = _text_of(real, relative)
            if data is None:
                continue
            files, searched = files + 1, searched + len(data)
            for number, line in search_lines(data, pattern, budget):
                text = line.decode("utf-8", errors="replace").rstrip()[:500]
                found.append(f"{relative}:{number}: {text}")
                if len(found) >= GREP_MAX_MATCHES:
                    walk.stopped = f"stopped at {GREP_MAX_MATCHES} matches"
                    raise _Exhausted
    except _Exhausted:
        pass
    notes = [walk.stopped] if walk.stopped else []
    if too_large:
        notes.append(f"{too_large} files over {GREP_MAX_FILE_BYTES} bytes not searched")
    if budget.lines_too_long:
        notes.append(f"{budget.lines_too_long} lines too long to search with a pattern this large")
    suffix = "".join(f"\n… ({note})" for note in notes)
    return ("\n".join(found) if found else "No matches.") + suffix


def _grep_candidates(workspace: Workspace, base: Path, walk: _Walk) -> Iterator[tuple[Path, Path, os.stat_result]]:
    """(path as found, real path, lstat) of the regular files grep searches under `base` (or `base`)."""
    status = os.lstat(base)
    if not stat.S_ISDIR(status.st_mode):
        if not stat.S_ISREG(status.st_mode):
            raise NotRegular(workspace.relative(base), kind_of(status.st_mode))
        yield base, base, status
        return
    for relative, entry, status in _walk(base, walk):
        target = _target(workspace, entry, status)
        if target is not None and stat.S_ISREG(target[1].st_mode):
            yield base / relative, target[0], target[1]


def _text_of(path: Path, label: str) -> bytes | None:
    """A regular file's bytes for grep, lines ending in b"\\n" and valid UTF-8 (RE2 matches characters
    only there); None for a binary file or one that can't be opened (a FIFO swapped in, gone, denied)."""
    try:
        with open_for_reading(path, label) as (fd, _):
            data = read_at_most(fd, GREP_MAX_FILE_BYTES)
    except (ToolError, OSError):
        return None
    if b"\x00" in data[:8192]:
        return None
    if b"\r" in data:
        data = data.replace(b"\r\n", b"\n")
    if not data.isascii():
        try:
            data.decode("utf-8")
        except UnicodeDecodeError:
            data = data.decode("utf-8", errors="replace").encode("utf-8")
    return data
