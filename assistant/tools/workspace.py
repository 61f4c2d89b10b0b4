"""The orchestrator's built-in tools, confined to one workspace directory.

Every path a tool takes is resolved (symlinks included) and must land inside the workspace; anything
else is refused with an error the model can read. That confinement covers the *file* tools only. In
server-side turns `run_shell` runs in the bubblewrap sandbox (`sandbox=`, assistant/tools/sandbox.py); in
the CLI it runs its command as the operator's user, with the workspace as working directory and a
filtered environment, which is not a sandbox: leave `run_shell` out of the allowed tools when that
matters.
"""

from __future__ import annotations

import asyncio
import dataclasses
import errno
import fnmatch
import os
import re
import signal
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from assistant.engine import ToolCall, ToolOutcome
from assistant.tools.sandbox import MOUNT_POINT, SandboxLimits, SandboxResult, run_sandboxed

READ_DEFAULT_LINES = 2000
GLOB_MAX_RESULTS = 1000
GREP_MAX_MATCHES = 200
GREP_MAX_FILE_BYTES = 5 * 1024 * 1024
LIST_MAX_ENTRIES = 1000
SKIPPED_DIRS = {".git", ".hg", ".svn", "__pycache__", "node_modules", ".venv", ".mypy_cache", ".pytest_cache"}


class ToolError(Exception):
    """A failure the model should read (bad path, missing file, no match...)."""


def cap_output(text: str, limit: int) -> str:
    if len(text) <= limit:
        return text
    return text[:limit] + f"\n… [output truncated: {len(text) - limit} more characters]"


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

    def inside(self, path: Path) -> bool:
        return Path(os.path.realpath(path)).is_relative_to(self.root)


@dataclass(frozen=True)
class BuiltinTool:
    name: str
    description: str
    input_schema: dict[str, Any]
    handler: Callable[[BuiltinTools, dict[str, Any]], Awaitable[str] | str]
    is_async: bool = False

    def definition(self) -> dict[str, Any]:
        return {"name": self.name, "description": self.description, "input_schema": self.input_schema}


def _schema(properties: dict[str, Any], required: list[str]) -> dict[str, Any]:
    return {"type": "object", "properties": properties, "required": required, "additionalProperties": False}


class ShellResult(Exception):
    """A finished shell command whose exit status was not 0 (the model reads it as an error)."""


class BuiltinTools:
    """The file and shell tools, bound to one workspace. Implements the engine's ToolRunner."""

    def __init__(
        self,
        workspace: Workspace,
        *,
        shell_timeout: int,
        output_limit: int,
        shell_env: dict[str, str],
        names: frozenset[str] | None = None,
        sandbox: SandboxLimits | None = None,
    ):
        """`names`: the tools offered (default: all). `sandbox`: run_shell runs in bubblewrap with
        these limits (server-side turns) instead of as the server's user (the CLI)."""
        self.workspace = workspace
        self.shell_timeout = shell_timeout
        self.output_limit = output_limit
        self.shell_env = shell_env
        self.names = frozenset(TOOLS) if names is None else frozenset(names) & frozenset(TOOLS)
        self.sandbox = sandbox
        # With a sandboxed shell, one call at a time: a command swapping a directory for a symlink
        # while a file tool (running as the server) writes under it would race the path check.
        # Nothing of a command outlives it (its pid namespace dies with it).
        self.one_at_a_time = asyncio.Lock() if sandbox is not None else None

    # --- ToolRunner ---------------------------------------------------------------------------

    def definitions(self) -> list[dict[str, Any]]:
        definitions = [tool.definition() for name, tool in TOOLS.items() if name in self.names]
        if self.sandbox is not None:
            for definition in definitions:
                if definition["name"] == "run_shell":
                    definition["description"] = SANDBOXED_SHELL_DESCRIPTION
        return definitions

    async def run(self, call: ToolCall) -> ToolOutcome:
        if self.one_at_a_time is None:
            return await self._run(call)
        async with self.one_at_a_time:
            return await self._run(call)

    async def _run(self, call: ToolCall) -> ToolOutcome:
        tool = TOOLS.get(call.name) if call.name in self.names else None
        if tool is None:
            return ToolOutcome(call.id, f"Unknown tool: {call.name}", is_error=True)
        try:
            _check_input(tool, call.input)
            if tool.is_async:
                text = await tool.handler(self, call.input)
            else:
                text = await asyncio.to_thread(tool.handler, self, call.input)
        except ToolError as exc:
            return ToolOutcome(call.id, cap_output(str(exc), self.output_limit), is_error=True)
        except ShellResult as exc:
            return ToolOutcome(call.id, cap_output(str(exc), self.output_limit), is_error=True)
        except OSError as exc:
            return ToolOutcome(call.id, _os_error_text(exc, self.workspace), is_error=True)
        return ToolOutcome(call.id, cap_output(text, self.output_limit))

    # --- tools --------------------------------------------------------------------------------

    def list_directory(self, args: dict[str, Any]) -> str:
        directory = self.workspace.resolve(args.get("path"))
        if not directory.is_dir():
            raise ToolError(f"Not a directory: {args.get('path') or '.'}")
        lines = []
        for entry in sorted(os.scandir(directory), key=lambda e: e.name)[:LIST_MAX_ENTRIES]:
            if entry.is_symlink():
                lines.append(f"{entry.name} -> {os.readlink(entry.path)}")
            elif entry.is_dir():
                lines.append(f"{entry.name}/")
            else:
                lines.append(f"{entry.name}  ({entry.stat().st_size} bytes)")
        return "\n".join(lines) if lines else "(empty directory)"

    def glob(self, args: dict[str, Any]) -> str:
        pattern = str(args["pattern"])
        if Path(pattern).is_absolute() or ".." in Path(pattern).parts:
            raise ToolError("Glob patterns are relative to the workspace and may not contain '..'.")
        base = self.workspace.resolve(args.get("path"))
        matches = []
        for match in base.glob(pattern):
            if any(part in SKIPPED_DIRS for part in match.relative_to(base).parts):
                continue
            if not self.workspace.inside(match):
                continue  # a symlink pointing out of the workspace
            matches.append(self.workspace.relative(match.parent.resolve() / match.name))
            if len(matches) >= GLOB_MAX_RESULTS:
                break
        if not matches:
            return "No files match."
        suffix = f"\n… (stopped at {GLOB_MAX_RESULTS} matches)" if len(matches) >= GLOB_MAX_RESULTS else ""
        return "\n".join(sorted(matches)) + suffix

    def grep(self, args: dict[str, Any]) -> str:
        flags = re.IGNORECASE if args.get("case_insensitive") else 0
        try:
            regex = re.compile(str(args["pattern"]), flags)
        except re.error as exc:
            raise ToolError(f"Invalid regular expression: {exc}") from exc
        base = self.workspace.resolve(args.get("path"))
        include = args.get("glob")
        files = [base] if base.is_file() else self._walk_files(base)
        found: list[str] = []
        for file in files:
            if include and not (
                fnmatch.fnmatch(file.name, include) or fnmatch.fnmatch(self.workspace.relative(file), include)
            ):
                continue
            for number, line in _text_lines(file):
                if regex.search(line):
                    found.append(f"{self.workspace.relative(file)}:{number}: {line.rstrip()[:500]}")
                    if len(found) >= GREP_MAX_MATCHES:
                        return "\n".join(found) + f"\n… (stopped at {GREP_MAX_MATCHES} matches)"
        return "\n".join(found) if found else "No matches."

    def _walk_files(self, base: Path):
        for directory, dirnames, filenames in os.walk(base, followlinks=False):
            dirnames[:] = sorted(d for d in dirnames if d not in SKIPPED_DIRS)
            for name in sorted(filenames):
                path = Path(directory) / name
                if self.workspace.inside(path) and path.is_file():
                    yield path

    def read_file(self, args: dict[str, Any]) -> str:
        path = self.workspace.resolve(args["path"])
        if path.is_dir():
            raise ToolError(f"{args['path']} is a directory; use list_directory.")
        data = path.read_bytes()
        if b"\x00" in data[:8192]:
            raise ToolError(f"{args['path']} looks like a binary file ({len(data)} bytes); it is not shown.")
        lines = data.decode("utf-8", errors="replace").splitlines()
        start = int(args.get("start_line") or 1)
        end = args.get("end_line")
        end = int(end) if end is not None else start + READ_DEFAULT_LINES - 1
        if start < 1 or end < start:
            raise ToolError("start_line must be ≥ 1 and end_line ≥ start_line.")
        if not lines:
            return "(empty file)"
        if start > len(lines):
            raise ToolError(f"The file has {len(lines)} lines; start_line {start} is past its end.")
        shown = [f"{number:6}\t{lines[number - 1]}" for number in range(start, min(end, len(lines)) + 1)]
        if end < len(lines):
            shown.append(f"… ({len(lines) - end} more lines; read on with start_line={end + 1})")
        return "\n".join(shown)

    def write_file(self, args: dict[str, Any]) -> str:
        path = self.workspace.resolve(args["path"])
        if path.is_dir():
            raise ToolError(f"{args['path']} is a directory.")
        path.parent.mkdir(parents=True, exist_ok=True)
        content = str(args["content"])
        existed = path.exists()
        _write_no_follow(path, content)
        return (
            f"{'Overwrote' if existed else 'Created'} {self.workspace.relative(path)} ({len(content.encode())} bytes)."
        )

    def edit_file(self, args: dict[str, Any]) -> str:
        path = self.workspace.resolve(args["path"])
        if not path.is_file():
            raise ToolError(f"No such file: {args['path']}")
        old, new = str(args["old_string"]), str(args["new_string"])
        if not old:
            raise ToolError("old_string must not be empty (use write_file to create a file).")
        if old == new:
            raise ToolError("old_string and new_string are the same.")
        text = path.read_text(encoding="utf-8")
        count = text.count(old)
        if count == 0:
            raise ToolError(f"old_string was not found in {args['path']}.")
        if count > 1 and not args.get("replace_all"):
            raise ToolError(
                f"old_string occurs {count} times in {args['path']}; add surrounding context to make it unique "
                "or set replace_all."
            )
        _write_no_follow(path, text.replace(old, new))
        return f"Edited {self.workspace.relative(path)}: {count} replacement{'s' if count > 1 else ''}."

    async def run_shell(self, args: dict[str, Any]) -> str:
        command = str(args["command"])
        timeout = min(int(args.get("timeout") or self.shell_timeout), self.shell_timeout)
        if self.sandbox is not None:
            limits = dataclasses.replace(self.sandbox, timeout=min(timeout, self.sandbox.timeout))
            try:
                return await run_sandboxed(self.workspace.root, command, limits)
            except SandboxResult as exc:
                raise ShellResult(str(exc)) from None
        process = await asyncio.create_subprocess_shell(
            command,
            cwd=self.workspace.root,
            env={**self.shell_env, "PWD": str(self.workspace.root)},
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
            start_new_session=True,  # its own process group, so a timeout kills its children too
        )
        chunks: list[bytes] = []
        kept = 0
        dropped = 0

        async def drain() -> None:
            nonlocal kept, dropped
            assert process.stdout is not None
            while chunk := await process.stdout.read(65536):
                if kept < self.output_limit * 4:  # bytes; decoded and capped in characters below
                    chunks.append(chunk)
                    kept += len(chunk)
                else:
                    dropped += len(chunk)
            await process.wait()

        try:
            await asyncio.wait_for(drain(), timeout)
        except (TimeoutError, asyncio.CancelledError) as exc:
            _kill_group(process.pid)
            await process.wait()
            if isinstance(exc, asyncio.CancelledError):
                raise
            output = b"".join(chunks).decode("utf-8", errors="replace")
            raise ShellResult(f"Command timed out after {timeout} s and was killed.\n{output}".rstrip()) from None
        output = b"".join(chunks).decode("utf-8", errors="replace")
        if dropped:
            output += f"\n… [output truncated: {dropped} more bytes]"
        if process.returncode != 0:
            raise ShellResult(f"Exit code {process.returncode}\n{output}".rstrip())
        return output if output.strip() else "(no output, exit code 0)"


def _kill_group(pid: int) -> None:
    try:
        os.killpg(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def _write_no_follow(path: Path, content: str) -> None:
    """Write without following a symlink at the last component (one created after the check)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | getattr(os, "O_NOFOLLOW", 0), 0o644)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(content)


def _text_lines(path: Path):
    try:
        if path.stat().st_size > GREP_MAX_FILE_BYTES:
            return
        data = path.read_bytes()
    except OSError:
        return
    if b"\x00" in data[:8192]:
        return
    yield from enumerate(data.decode("utf-8", errors="replace").splitlines(), start=1)


def _os_error_text(exc: OSError, workspace: Workspace) -> str:
    name = exc.filename
    if isinstance(name, str) and name.startswith(str(workspace.root)):
        name = workspace.relative(Path(name)) if Path(name).is_relative_to(workspace.root) else name
    reason = {
        errno.ENOENT: "No such file or directory",
        errno.EACCES: "Permission denied",
        errno.ELOOP: "Refusing to follow a symlink",
    }.get(exc.errno or 0, exc.strerror or str(exc))
    return f"{reason}: {name}" if name else reason


def _check_input(tool: BuiltinTool, values: dict[str, Any]) -> None:
    if not isinstance(values, dict):
        raise ToolError("The tool input must be an object.")
    schema = tool.input_schema
    missing = [name for name in schema.get("required", []) if values.get(name) is None]
    if missing:
        raise ToolError(f"Missing required input: {', '.join(missing)}.")
    unknown = sorted(set(values) - set(schema["properties"]))
    if unknown:
        raise ToolError(f"Unknown input: {', '.join(unknown)}. Accepted: {', '.join(schema['properties'])}.")
    for name, value in values.items():
        expected = schema["properties"][name].get("type")
        ok = {
            "string": isinstance(value, str),
            "integer": isinstance(value, int) and not isinstance(value, bool),
            "boolean": isinstance(value, bool),
        }.get(expected, True)
        if value is not None and not ok:
            raise ToolError(f"Input {name} must be a {expected}.")


_PATH = {"type": "string", "description": "Path relative to the workspace root."}

TOOLS: dict[str, BuiltinTool] = {
    tool.name: tool
    for tool in [
        BuiltinTool(
            "list_directory",
            "List the entries of a directory in the workspace (directories end with '/').",
            _schema(
                {"path": {**_PATH, "description": "Directory relative to the workspace root (default: the root)."}}, []
            ),
            BuiltinTools.list_directory,
        ),
        BuiltinTool(
            "glob",
            "Find files in the workspace whose path matches a glob pattern such as '**/*.py'.",
            _schema(
                {
                    "pattern": {"type": "string"},
                    "path": {**_PATH, "description": "Directory to search from (default: the root)."},
                },
                ["pattern"],
            ),
            BuiltinTools.glob,
        ),
        BuiltinTool(
            "grep",
            "Search file contents in the workspace with a regular expression; answers path:line: text.",
            _schema(
                {
                    "pattern": {"type": "string", "description": "Python regular expression."},
                    "path": {**_PATH, "description": "File or directory to search (default: the root)."},
                    "glob": {"type": "string", "description": "Only files whose name or path matches, e.g. '*.py'."},
                    "case_insensitive": {"type": "boolean"},
                },
                ["pattern"],
            ),
            BuiltinTools.grep,
        ),
        BuiltinTool(
            "read_file",
            "Read a text file of the workspace, with line numbers; start_line/end_line (1-based, inclusive) read a range.",
            _schema({"path": _PATH, "start_line": {"type": "integer"}, "end_line": {"type": "integer"}}, ["path"]),
            BuiltinTools.read_file,
        ),
        BuiltinTool(
            "write_file",
            "Create or overwrite a file of the workspace with the given content (parent directories are created).",
            _schema({"path": _PATH, "content": {"type": "string"}}, ["path", "content"]),
            BuiltinTools.write_file,
        ),
        BuiltinTool(
            "edit_file",
            "Replace an exact string in a file of the workspace. old_string must occur exactly once unless replace_all is true.",
            _schema(
                {
                    "path": _PATH,
                    "old_string": {"type": "string"},
                    "new_string": {"type": "string"},
                    "replace_all": {"type": "boolean"},
                },
                ["path", "old_string", "new_string"],
            ),
            BuiltinTools.edit_file,
        ),
        BuiltinTool(
            "run_shell",
            "Run a shell command with the workspace as working directory; answers its combined output and exit code. "
            "Commands are killed after a timeout.",
            _schema(
                {
                    "command": {"type": "string"},
                    "timeout": {"type": "integer", "description": "Seconds (capped by the server)."},
                },
                ["command"],
            ),
            BuiltinTools.run_shell,
            is_async=True,
        ),
    ]
}

FILE_TOOLS = frozenset(name for name in TOOLS if name != "run_shell")
SANDBOXED_SHELL_DESCRIPTION = (
    f"Run a shell command (/bin/sh) in a sandbox whose working directory is the workspace ({MOUNT_POINT}); "
    "answers its combined output and exit code. The workspace is the only place it can write to; there is "
    "no network; time, memory, processes and output are limited."
)

# Claude Code's tool names, so agents configured for it keep working with --allowed-tools.
ALIASES = {
    "LS": "list_directory",
    "Glob": "glob",
    "Grep": "grep",
    "Read": "read_file",
    "Write": "write_file",
    "Edit": "edit_file",
    "MultiEdit": "edit_file",
    "Bash": "run_shell",
}
