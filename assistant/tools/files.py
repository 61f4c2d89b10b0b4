"""A workspace's paths and files, for the file tools: confinement, and opening regular files only.

`Workspace.resolve` turns a path the model gave into a real path inside the workspace, or refuses it.

Opening never blocks. A workspace can hold anything a shell command makes: `mkfifo p`, then
`read_file p`, and a plain open() waits for a writer forever, holding a thread. Here a path is checked
with lstat, opened with O_NOFOLLOW and O_NONBLOCK (a FIFO opens at once, or fails: ENXIO for writing
without a reader; a socket fails), and the open file checked again with fstat (it may have been swapped
since the lstat); anything but a regular file is a ToolError naming what it is. Reads and writes of a
regular file don't block.
"""

from __future__ import annotations

import errno
import os
import stat
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

_KINDS = [
    (stat.S_ISDIR, "a directory"),
    (stat.S_ISFIFO, "a named pipe (FIFO)"),
    (stat.S_ISSOCK, "a socket"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
    (stat.S_ISLNK, "a symbolic link"),
]
_NO_BLOCK = os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC


class ToolError(Exception):
    """A failure the model should read (bad path, missing file, no match...)."""


class NotRegular(ToolError):
    """A path that is there but isn't a regular file; `kind` says what it is."""

    def __init__(self, label: str, kind: str):
        self.label, self.kind = label, kind
        super().__init__(f"{label} is {kind}: the file tools read and write regular files only.")


class Workspace:
    def __init__(self, root: str | os.PathLike[str]):
        path = Path(root).expanduser()
        if not path.is_dir():
            raise ValueError(f"workspace directory does not exist: {root}")
        self.root = path.resolve()

    def resolve(self, path: str | None, *, default: str = ".") -> Path:
        """The real path of `path` (relative to the workspace), or ToolError when it leaves it.

        Symlinks are resolved before the check, dangling ones too, so a link pointing outside is
        refused however it is reached; `..` that stays inside is fine."""
        raw = default if path is None or path == "" else str(path)
        if "\x00" in raw:
            raise ToolError("Path contains a NUL byte.")
        candidate = Path(raw).expanduser() if raw.startswith("~") else Path(raw)
        if not candidate.is_absolute():
            candidate = self.root / candidate
        resolved = Path(os.path.realpath(candidate))
        if not resolved.is_relative_to(self.root):
            # Not the absolute root: in server turns it would tell the model (and the user) where the server keeps data.
            raise ToolError(f"Path is outside the workspace: {raw} (give paths relative to the workspace root).")
        return resolved

    def relative(self, path: Path) -> str:
        rel = path.relative_to(self.root).as_posix()
        return rel or "."


def kind_of(mode: int) -> str:
    return next((name for test, name in _KINDS if test(mode)), "not a regular file")


def _check(fd: int, label: str) -> os.stat_result:
    status = os.fstat(fd)
    if not stat.S_ISREG(status.st_mode):
        os.close(fd)
        raise NotRegular(label, kind_of(status.st_mode))
    return status


@contextmanager
def open_for_reading(path: Path, label: str) -> Iterator[tuple[int, os.stat_result]]:
    """(fd, fstat) of the regular file at `path`; NotRegular (or OSError) otherwise, without blocking."""
    status = os.lstat(path)
    if not stat.S_ISREG(status.st_mode):
        raise NotRegular(label, kind_of(status.st_mode))
    fd = os.open(path, os.O_RDONLY | _NO_BLOCK)
    status = _check(fd, label)
    try:
        yield fd, status
    finally:
        os.close(fd)


def read_at_most(fd: int, limit: int) -> bytes:
    """Up to `limit` bytes of the open file, from where it is."""
    chunks, size = [], 0
    while size < limit and (chunk := os.read(fd, min(1024 * 1024, limit - size))):
        chunks.append(chunk)
        size += len(chunk)
    return b"".join(chunks)


def write_regular(path: Path, data: bytes, label: str) -> bool:
    """Create or replace the contents of the regular file at `path`, never following a symlink there
    (one made after the path was checked) nor waiting on a pipe. True when it existed before."""
    try:
        status = os.lstat(path)
    except FileNotFoundError:
        existed = False
    else:
        if not stat.S_ISREG(status.st_mode):
            raise NotRegular(label, kind_of(status.st_mode))
        existed = True
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | _NO_BLOCK, 0o644)
    except OSError as exc:
        if exc.errno == errno.ENXIO:  # a FIFO without a reader, made since the lstat
            raise NotRegular(label, "a named pipe (FIFO)") from None
        raise
    _check(fd, label)
    try:
        # Truncated only now that it is known to be a regular file.
        os.ftruncate(fd, 0)
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
    finally:
        os.close(fd)
    return existed


READ_COUNT_MAX_BYTES = 256 * 1024 * 1024  # past the lines shown, lines are counted this far into a file


@dataclass
class LineWindow:
    """Lines `start`… of a file as read (1-based number, bytes without the newline); `total` lines in the
    file, None when it is longer than was counted; `end` the last line the window could hold."""

    lines: list[tuple[int, bytes]]
    total: int | None
    end: int


def read_window(fd: int, start: int, end: int, keep_bytes: int, check: Callable[[], None]) -> LineWindow:
    """Lines `start` to `end` of the open file, streamed: at most `keep_bytes` of them are kept (the
    window ends at the line where they run out), and lines past it are only counted."""
    lines: list[tuple[int, bytes]] = []
    number, current, kept, partial, read = 1, bytearray(), 0, False, 0
    while chunk := os.read(fd, 1024 * 1024):
        check()
        read += len(chunk)
        newlines = chunk.count(b"\n")
        if number > end or number + newlines < start:  # wholly outside the window: count its lines
            number += newlines
            partial = not chunk.endswith(b"\n")
            if number > end and read > READ_COUNT_MAX_BYTES:
                return LineWindow(lines, None, end)
            continue
        position = 0
        while position < len(chunk):
            newline = chunk.find(b"\n", position)
            stop_at = len(chunk) if newline < 0 else newline
            if start <= number <= end and kept < keep_bytes:
                piece = chunk[position : min(stop_at, position + keep_bytes - kept)]
                current += piece
                kept += len(piece)
            partial = newline < 0
            if partial:
                break
            if start <= number <= end:
                lines.append((number, bytes(current)))
                if kept >= keep_bytes:
                    end = number  # what is kept is all the answer can show anyway
            current.clear()
            number += 1
            position = newline + 1
    if partial:
        if start <= number <= end:
            lines.append((number, bytes(current)))
        return LineWindow(lines, number, end)
    return LineWindow(lines, number - 1, end)
