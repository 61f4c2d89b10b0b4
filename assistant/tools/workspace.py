"""The orchestrator's built-in tools, confined to one workspace directory.

Every path a tool takes is resolved (symlinks included) and must land inside the workspace; anything
else is refused with an error the model can read (assistant/tools/files.py). The file tools open regular
files only, match patterns with RE2 (patterns.py), walk within bounds (search.py) and run on the tools' own
threads (threads.py), so none of them can hold a thread, or the process, for long. The confinement covers
the *file* tools only. In
server-side turns `run_shell` runs in the bubblewrap sandbox (`sandbox=`, assistant/tools/sandbox.py); in
the CLI it runs its command as the operator's user, with the workspace as working directory and a
filtered environment, which is not a sandbox: leave `run_shell` out of the allowed tools when that
matters.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import dataclasses
import errno
import os
import signal
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from assistant.engine import ToolCall, ToolOutcome
from assistant.tools import search
from assistant.tools.files import ToolError, Workspace, open_for_reading, read_at_most, read_window, write_regular
from assistant.tools.patterns import NameGlob, glob_pattern, line_pattern
from assistant.tools.sandbox import MOUNT_POINT, SandboxLimits, SandboxResult, run_sandboxed
from assistant.tools.threads import Stop, in_tool_thread

READ_DEFAULT_LINES = 2000
EDIT_MAX_BYTES = 16 * 1024 * 1024  # edit_file reads the whole file


def cap_output(text: str, limit: int) -> str:
    if len(text) <= limit:
        return text
    return text[:limit] + f"\n… [output truncated: {len(text) - limit} more characters]"


@dataclass(frozen=True)
class BuiltinTool:
    name: str
    description: str
    input_schema: dict[str, Any]
    # A sync handler, (tools, input, Stop) -> str, runs in a tool thread; an async one, (tools, input), on the loop.
    handler: Callable[..., str | Awaitable[str]]
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
        # Nothing of a command outlives it (its pid namespace dies with it), and a file tool abandoned at
        # its timeout is waited for (`_unfinished`) before the next call starts.
        self.one_at_a_time = asyncio.Lock() if sandbox is not None else None
        self._unfinished: concurrent.futures.Future | None = None

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
            if self._unfinished is not None:  # ends at its next check; this call's timeout bounds the wait
                await asyncio.wait([asyncio.wrap_future(self._unfinished)])
                self._unfinished = None
            return await self._run(call)

    def _abandoned(self, future: concurrent.futures.Future) -> None:
        if self.one_at_a_time is not None:
            self._unfinished = future

    async def _run(self, call: ToolCall) -> ToolOutcome:
        tool = TOOLS.get(call.name) if call.name in self.names else None
        if tool is None:
            return ToolOutcome(call.id, f"Unknown tool: {call.name}", is_error=True)
        try:
            _check_input(tool, call.input)
            if tool.is_async:
                text = await tool.handler(self, call.input)
            else:  # on the tools' own threads: never asyncio's default executor (assistant/tools/threads.py)
                text = await in_tool_thread(tool.handler, self, call.input, on_abandoned=self._abandoned)
        except ToolError as exc:
            return ToolOutcome(call.id, cap_output(str(exc), self.output_limit), is_error=True)
        except ShellResult as exc:
            return ToolOutcome(call.id, cap_output(str(exc), self.output_limit), is_error=True)
        except OSError as exc:
            return ToolOutcome(call.id, _os_error_text(exc, self.workspace), is_error=True)
        return ToolOutcome(call.id, cap_output(text, self.output_limit))

    # --- tools --------------------------------------------------------------------------------

    def list_directory(self, args: dict[str, Any], stop: Stop) -> str:
        directory = self.workspace.resolve(args.get("path"))
        return search.list_directory(self.workspace, directory, args.get("path") or ".", stop)

    def glob(self, args: dict[str, Any], stop: Stop) -> str:
        pattern = str(args["pattern"])
        if Path(pattern).is_absolute() or ".." in Path(pattern).parts:
            raise ToolError("Glob patterns are relative to the workspace and may not contain '..'.")
        compiled = glob_pattern(pattern)
        base = self.workspace.resolve(args.get("path"))
        if not base.is_dir():
            raise ToolError(f"Not a directory: {args.get('path')}")
        return search.glob(self.workspace, base, compiled, stop)

    def grep(self, args: dict[str, Any], stop: Stop) -> str:
        pattern = line_pattern(str(args["pattern"]), case_insensitive=bool(args.get("case_insensitive")))
        include = NameGlob(str(args["glob"])) if args.get("glob") else None
        base = self.workspace.resolve(args.get("path"))
        return search.grep(self.workspace, base, pattern, include, stop)

    def read_file(self, args: dict[str, Any], stop: Stop) -> str:
        label = args["path"]
        path = self.workspace.resolve(label)
        start = int(args.get("start_line") or 1)
        end = args.get("end_line")
        end = int(end) if end is not None else start + READ_DEFAULT_LINES - 1
        if start < 1 or end < start:
            raise ToolError("start_line must be ≥ 1 and end_line ≥ start_line.")
        if path.is_dir():
            raise ToolError(f"{label} is a directory; use list_directory.")
        with open_for_reading(path, label) as (fd, status):
            if b"\x00" in os.pread(fd, 8192, 0):
                raise ToolError(f"{label} looks like a binary file ({status.st_size} bytes); it is not shown.")
            window = read_window(fd, start, end, self.output_limit * 4, stop.check)
        if window.total == 0:
            return "(empty file)"
        if not window.lines:
            raise ToolError(f"The file has {window.total} lines; start_line {start} is past its end.")
        shown = [f"{number:6}\t{_line_text(line)}" for number, line in window.lines]
        if window.total is None:
            shown.append(f"… (more lines; read on with start_line={window.end + 1})")
        elif window.end < window.total:
            shown.append(f"… ({window.total - window.end} more lines; read on with start_line={window.end + 1})")
        return "\n".join(shown)

    def write_file(self, args: dict[str, Any], stop: Stop) -> str:
        path = self.workspace.resolve(args["path"])
        if path.is_dir():
            raise ToolError(f"{args['path']} is a directory.")
        path.parent.mkdir(parents=True, exist_ok=True)
        content = str(args["content"]).encode("utf-8", errors="replace")
        existed = write_regular(path, content, args["path"])
        return f"{'Overwrote' if existed else 'Created'} {self.workspace.relative(path)} ({len(content)} bytes)."

    def edit_file(self, args: dict[str, Any], stop: Stop) -> str:
        label = args["path"]
        path = self.workspace.resolve(label)
        old, new = str(args["old_string"]), str(args["new_string"])
        if not old:
            raise ToolError("old_string must not be empty (use write_file to create a file).")
        if old == new:
            raise ToolError("old_string and new_string are the same.")
        try:
            with open_for_reading(path, label) as (fd, status):
                if status.st_size > EDIT_MAX_BYTES:
                    raise ToolError(f"{label} is {status.st_size} bytes; edit_file takes files up to {EDIT_MAX_BYTES}.")
                data = read_at_most(fd, EDIT_MAX_BYTES + 1)
        except FileNotFoundError:
            raise ToolError(f"No such file: {label}") from None
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError:
            raise ToolError(f"{label} is not UTF-8 text; edit_file can't change it.") from None
        count = text.count(old)
        if count == 0:
            raise ToolError(f"old_string was not found in {label}.")
        if count > 1 and not args.get("replace_all"):
            raise ToolError(
                f"old_string occurs {count} times in {label}; add surrounding context to make it unique "
                "or set replace_all."
            )
        stop.check()  # not written once abandoned: the caller has answered the model already
        write_regular(path, text.replace(old, new).encode("utf-8", errors="replace"), label)
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


def _line_text(line: bytes) -> str:
    return line.decode("utf-8", errors="replace").removesuffix("\r")


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
                    "pattern": {
                        "type": "string",
                        "description": "Regular expression, RE2 syntax: Python's without backreferences or "
                        "lookaround. Each line is matched on its own.",
                    },
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
