"""Sessions' workspace directories and the files users upload into them.

A session's workspace is WORKSPACES_DIR/<session id>, created when first needed (an upload, or a
turn of an agent with workspace tools) and removed with the session. The agent's file tools and the
sandboxed shell see exactly this directory; uploads land at its top level.
"""

from __future__ import annotations

import os
import shutil
import unicodedata
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from stat import S_ISLNK
from typing import IO

from django.conf import settings
from django.core.exceptions import ValidationError

MAX_NAME_CHARS = 120
_CHUNK = 64 * 1024
UPLOAD_BODY_OVERHEAD = 64 * 1024  # headers and boundaries around the file in a multipart body
# The upload endpoint's path, as the server's edge sees it (config/http/edge_paths.py).
UPLOAD_PATH_PATTERN = r"/api/v1/sessions/[^/]+/files/?"


def upload_body_limit() -> int:
    """The largest request body the upload endpoint takes: a file of WORKSPACE_MAX_FILE_BYTES and its envelope."""
    return settings.WORKSPACE_MAX_FILE_BYTES + UPLOAD_BODY_OVERHEAD


class FileTooLarge(Exception):
    """An upload over WORKSPACE_MAX_FILE_BYTES, or one that would take the session over its quota."""


@dataclass(frozen=True)
class WorkspaceFile:
    name: str
    size: int
    modified: datetime


def workspace_path(session_id: int) -> Path:
    return Path(settings.WORKSPACES_DIR) / str(int(session_id))


def workspace_ensure(session_id: int) -> Path:
    path = workspace_path(session_id)
    path.mkdir(parents=True, exist_ok=True, mode=0o755)
    return path


def workspace_remove(session_id: int) -> None:
    shutil.rmtree(workspace_path(session_id), ignore_errors=True)


@dataclass(frozen=True)
class WorkspaceUsage:
    bytes: int  # sizes of its files (not of directories, not what symlinks point to)
    entries: int  # files, directories, symlinks and anything else below the root
    complete: bool = True  # False: the count stopped at `stop_after_entries`


def workspace_usage(root: Path, *, stop_after_entries: int | None = None) -> WorkspaceUsage:
    """What a workspace holds, as its quota counts it (uploads and sandboxed commands alike)."""
    size = entries = 0
    for directory, dirnames, names in os.walk(root, followlinks=False):
        entries += len(dirnames)
        for name in names:
            entries += 1
            try:
                stat = os.lstat(os.path.join(directory, name))
            except OSError:
                continue
            if not S_ISLNK(stat.st_mode):
                size += stat.st_size
        if stop_after_entries is not None and entries > stop_after_entries:
            return WorkspaceUsage(size, entries, complete=False)
    return WorkspaceUsage(size, entries)


def workspace_size(root: Path) -> int:
    """Bytes of the files under `root` (symlinks not followed)."""
    return workspace_usage(root).bytes


def file_name_clean(raw: str) -> str:
    """An uploaded file's name as stored: its last path part, no control characters, not hidden, no
    `..`, at most MAX_NAME_CHARS characters. ValidationError (on `file`) when nothing usable is left."""
    name = unicodedata.normalize("NFC", str(raw or ""))
    if "\x00" in name:
        raise ValidationError({"file": ["The file name contains a NUL character."]})
    name = name.replace("\\", "/").rsplit("/", 1)[-1]  # Windows browsers send C:\\path\\name
    name = "".join(ch for ch in name if unicodedata.category(ch)[0] != "C").strip()
    name = name.lstrip(".").strip()  # no hidden files, no `.` or `..`
    if not name:
        raise ValidationError({"file": ["The file needs a name (not empty, not only dots or a path)."]})
    if len(name) > MAX_NAME_CHARS:
        stem, dot, ext = name.rpartition(".")
        ext = ext[:16] if dot and stem else ""
        name = (name[: MAX_NAME_CHARS - len(ext) - 1] + "." + ext) if ext else name[:MAX_NAME_CHARS]
    return name


def _unique(root: Path, name: str) -> str:
    if not (root / name).exists() and not (root / name).is_symlink():
        return name
    stem, dot, ext = name.rpartition(".")
    if not (dot and stem):
        stem, ext = name, ""
    for number in range(1, 10_000):
        suffix = f" ({number})" + (f".{ext}" if ext else "")
        candidate = stem[: MAX_NAME_CHARS - len(suffix)] + suffix
        if not (root / candidate).exists() and not (root / candidate).is_symlink():
            return candidate
    raise ValidationError({"file": ["Too many files with this name; delete some first."]})


def file_list(*, session_id: int) -> list[WorkspaceFile]:
    """The regular files at the workspace's top level (uploads, and what the agent wrote there)."""
    root = workspace_path(session_id)
    if not root.is_dir():
        return []
    files = []
    for entry in os.scandir(root):
        if entry.is_file(follow_symlinks=False):
            stat = entry.stat(follow_symlinks=False)
            files.append(WorkspaceFile(entry.name, stat.st_size, datetime.fromtimestamp(stat.st_mtime, tz=UTC)))
    return sorted(files, key=lambda f: f.name)


def file_save(*, session_id: int, name: str, stream: IO[bytes], size: int | None = None) -> WorkspaceFile:
    """Store an upload under a clean, unique name. FileTooLarge over the size limit or the quota,
    ValidationError for a bad name or too many files. Written to a temporary name first, so a
    failed upload leaves nothing behind."""
    name = file_name_clean(name)
    limit = settings.WORKSPACE_MAX_FILE_BYTES
    if size is not None and size > limit:
        raise FileTooLarge(f"The file is larger than {limit} bytes (WORKSPACE_MAX_FILE_BYTES).")
    root = workspace_ensure(session_id)
    if len(file_list(session_id=session_id)) >= settings.WORKSPACE_MAX_FILES:
        raise ValidationError({"file": [f"This session has {settings.WORKSPACE_MAX_FILES} files already; delete some first."]})
    room = settings.WORKSPACE_QUOTA_BYTES - workspace_size(root)
    temporary = root / f".upload-{os.getpid()}-{id(stream)}"
    written = 0
    try:
        with open(temporary, "xb") as out:
            while chunk := stream.read(_CHUNK):
                written += len(chunk)
                if written > limit:
                    raise FileTooLarge(f"The file is larger than {limit} bytes (WORKSPACE_MAX_FILE_BYTES).")
                if written > room:
                    raise FileTooLarge(
                        f"The session's files would exceed its quota of {settings.WORKSPACE_QUOTA_BYTES} bytes "
                        f"({max(room, 0)} bytes left); delete some files first."
                    )
                out.write(chunk)
        final = _unique(root, name)
        os.rename(temporary, root / final)
    finally:
        temporary.unlink(missing_ok=True)
    stat = (root / final).stat()
    return WorkspaceFile(final, stat.st_size, datetime.fromtimestamp(stat.st_mtime, tz=UTC))


def file_delete(*, session_id: int, name: str) -> bool:
    """Delete a top-level file of the workspace; False when there is no such file. Only plain names:
    anything with a path part, hidden or `..` is no such file."""
    root = workspace_path(session_id)
    if not name or name != os.path.basename(name) or name.startswith(".") or "\x00" in name:
        return False
    path = root / name
    if not path.is_file() or path.is_symlink():
        return False
    path.unlink()
    return True
