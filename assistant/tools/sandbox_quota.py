"""The workspace's quota for what sandboxed commands write (WORKSPACE_QUOTA_BYTES, WORKSPACE_MAX_ENTRIES).

The workspace is a bind mount of a directory: it has no size of its own, and the robust ways to give it one
(filesystem quotas, a loop-mounted image) need root. So the quota is kept around each command:
- before: every entry is noted (inode and ctime, after the hand-over to the sandbox's user) and the room
  left measured; no file the command writes may grow past that room (RLIMIT_FSIZE, `fsize_for`), and
  fallocate, which reserves disk past that limit, is refused (`seccomp_program`);
- while it runs: the workspace is measured every CHECK_SECONDS, and past a limit the command is killed;
- after it ends, however it ends: past a limit, what the command wrote or changed (entries whose inode or
  ctime differ from before) is removed, largest first, until the workspace is within both limits, and the
  model reads what was removed.
The workspace is thus over its quota only while a command runs, by what the command writes between two
checks — no single file larger than the room left when it started — and never once it has ended.
"""

from __future__ import annotations

import os
import platform
import shutil
import stat
import struct
from dataclasses import dataclass
from pathlib import Path

from agents.workspaces import WorkspaceUsage, workspace_usage

CHECK_SECONDS = 0.5


@dataclass(frozen=True)
class Before:
    """A workspace as a command found it: its entries' (inode, ctime) by relative path, and its usage."""

    entries: dict[str, tuple[int, int]]
    usage: WorkspaceUsage


def note(root: Path, *, owner: int | None) -> Before:
    """Note every entry of `root`, handing each to `owner` first when given (as root: the sandbox's user
    then may change what uploads and the file tools wrote; the server still can)."""
    if owner is not None:
        os.chown(root, owner, owner)
    entries: dict[str, tuple[int, int]] = {}
    size = 0
    for directory, dirnames, filenames in os.walk(root, followlinks=False):
        for name in dirnames + filenames:
            path = os.path.join(directory, name)
            try:
                if owner is not None:
                    os.chown(path, owner, owner, follow_symlinks=False)
                status = os.lstat(path)
            except OSError:
                continue
            entries[os.path.relpath(path, root)] = (status.st_ino, status.st_ctime_ns)
            if stat.S_ISREG(status.st_mode):
                size += status.st_size
    return Before(entries, WorkspaceUsage(size, len(entries)))


def fsize_for(before: Before, *, file_bytes: int, quota_bytes: int) -> int:
    """RLIMIT_FSIZE for the command: no file larger than SANDBOX_FILE_BYTES, nor than the room left."""
    return max(0, min(file_bytes, quota_bytes - before.usage.bytes))


def over(usage: WorkspaceUsage, *, quota_bytes: int, max_entries: int) -> bool:
    return usage.bytes > quota_bytes or usage.entries > max_entries


def measure(root: Path, max_entries: int) -> WorkspaceUsage:
    """The workspace's usage while a command runs; the count stops once past `max_entries`."""
    return workspace_usage(root, stop_after_entries=max_entries)


def remove_overflow(root: Path, before: Before, *, quota_bytes: int, max_entries: int) -> list[str]:
    """Once a command has ended: if the workspace is over a limit, remove what the command wrote or
    changed, largest files first, then directories it made, until it is within both. What was removed,
    as relative paths (directories with a trailing /)."""
    changed_files: list[tuple[int, str]] = []
    new_directories: list[str] = []
    size = entries = 0
    for directory, dirnames, filenames in os.walk(root, followlinks=False):
        for name in dirnames + filenames:
            path = os.path.join(directory, name)
            try:
                status = os.lstat(path)
            except OSError:
                continue
            entries += 1
            is_file = stat.S_ISREG(status.st_mode)
            size += status.st_size if is_file else 0
            relative = os.path.relpath(path, root)
            if before.entries.get(relative) == (status.st_ino, status.st_ctime_ns):
                continue
            if stat.S_ISDIR(status.st_mode):
                if relative not in before.entries:
                    new_directories.append(relative)
            else:
                changed_files.append((status.st_size if is_file else 0, relative))
    removed: list[str] = []
    for file_size, relative in sorted(changed_files, key=lambda item: (-item[0], item[1])):
        if size <= quota_bytes and entries <= max_entries:
            break
        if _remove(root, relative):
            size, entries = size - file_size, entries - 1
            removed.append(relative)
    for relative in sorted(new_directories, key=lambda path: (path.count(os.sep), path)):
        if entries <= max_entries:
            break
        path = root / relative
        if not os.path.lexists(path):
            continue  # inside one removed already
        below = sum(len(dirs) + len(files) for _, dirs, files in os.walk(path, followlinks=False))
        below_size = workspace_usage(path).bytes
        if _remove(root, relative):
            size, entries = size - below_size, entries - 1 - below
            removed.append(relative + "/")
    return removed


def _remove(root: Path, relative: str) -> bool:
    path = root / relative
    try:
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path, onerror=_writable_and_retry)
        else:
            _unlink(path)
    except OSError:
        return False
    return True


def _unlink(path: Path) -> None:
    try:
        os.unlink(path)
    except PermissionError:  # not root, and the command took the write bit off the directory
        parent = path.parent
        os.chmod(parent, stat.S_IMODE(os.lstat(parent).st_mode) | stat.S_IRWXU)
        os.unlink(path)


def _writable_and_retry(function, path, _exc_info) -> None:
    parent = os.path.dirname(path)
    os.chmod(parent, stat.S_IMODE(os.lstat(parent).st_mode) | stat.S_IRWXU)
    function(path)


# --- no fallocate -----------------------------------------------------------------------------------
# fallocate(2) reserves disk without growing a file (FALLOC_FL_KEEP_SIZE), and RLIMIT_FSIZE doesn't
# apply to it: `fallocate -n -l 50G f` would fill the disk at once. Refused, it is EOPNOTSUPP, which
# programs (posix_fallocate, cp, tar) take as "write the bytes instead", and writes are bounded.

_AUDIT_ARCH = {  # native architecture, then its 32-bit compat one; fallocate's syscall numbers in each
    "x86_64": [(0xC000003E, (285, 0x40000000 | 285)), (0x40000003, (324,))],  # x86-64 (and x32), i386
    "aarch64": [(0xC00000B7, (47,)), (0x40000028, (352,))],  # arm64, arm (EABI)
}
_LD_W_ABS, _JEQ_K, _RET_K = 0x20, 0x15, 0x06
_ALLOW, _ERRNO, _EOPNOTSUPP, _ENOSYS = 0x7FFF0000, 0x00050000, 95, 38


def seccomp_program() -> bytes | None:
    """A classic BPF filter for bubblewrap's --seccomp: fallocate fails with EOPNOTSUPP, other calls are
    allowed, and every call of an architecture not listed fails (ENOSYS). None on an unknown machine."""
    table = _AUDIT_ARCH.get(platform.machine())
    if table is None:
        return None
    code: list[tuple[int, int, int, int]] = [(_LD_W_ABS, 0, 0, 4)]  # A = seccomp_data.arch
    for arch, numbers in table:
        body = [(_LD_W_ABS, 0, 0, 0)]  # A = seccomp_data.nr
        deny = len(numbers) + 2  # body index of the ERRNO return
        body += [(_JEQ_K, deny - index - 1, 0, number) for index, number in enumerate(numbers, start=1)]
        body += [(_RET_K, 0, 0, _ALLOW), (_RET_K, 0, 0, _ERRNO | _EOPNOTSUPP)]
        code += [(_JEQ_K, 0, len(body), arch), *body]
    code.append((_RET_K, 0, 0, _ERRNO | _ENOSYS))
    return b"".join(struct.pack("=HBBI", *instruction) for instruction in code)
