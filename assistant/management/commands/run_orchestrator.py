"""`manage.py run_orchestrator`: run an agent with workspace tools and MCP servers from the command line.

    manage.py run_orchestrator -m "Add a test for utils.slugify" --workspace-dir ~/src/app
    manage.py run_orchestrator --agent reviewer --message-file task.md --mcp-config mcp.json --json
    echo "and now the docs" | manage.py run_orchestrator --stdin --resume-session-id 42

Tool calls the agent's approval policy holds are asked about on the terminal (y/N) when stdin is one;
`--approve` allows them all; otherwise they are denied and the model reads why.

Exit status 0 on success; 1 with one line `error: <reason>` on stderr otherwise (130 if interrupted).
"""

from __future__ import annotations

import asyncio
import json
import logging
import signal
import sys
import threading
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError
from django.db import DatabaseError

from assistant.surfaces.cli import JsonLinesSink, OrchestratorError, OrchestratorOptions, TextSink, run_orchestrator

NOISY_LOGGERS = ("httpx", "httpx2", "httpcore", "mcp", "anthropic", "assistant")


def _interactive(options) -> bool:
    """Someone can answer at the terminal: stdin is one, and not the message's source."""
    return not options.get("stdin") and sys.stdin is not None and sys.stdin.isatty()


class Command(BaseCommand):
    help = "Run an agent turn with workspace tools and MCP servers; the session is stored and can be resumed."
    # Its output is the agent's (or JSON lines): system-check warnings would only get in the way.
    requires_system_checks = []

    def add_arguments(self, parser):
        source = parser.add_mutually_exclusive_group()
        source.add_argument("-m", "--message", help="The message to send.")
        source.add_argument("--message-file", help="Read the message from this file.")
        source.add_argument("--stdin", action="store_true", help="Read the message from standard input.")
        parser.add_argument(
            "--agent", metavar="SLUG", help="Run this agent (system prompt, model, tools, integrations)."
        )
        parser.add_argument("--system-prompt-file", help="System prompt from this file (overrides the agent's).")
        parser.add_argument(
            "--workspace-dir", help="Directory the tools work in (default: AGENTS_DIR, else the current directory)."
        )
        parser.add_argument("--mcp-config", help='MCP servers JSON: {"name": {"command", "args", "env"} | {"type": "sse"|"http", "url", "headers"}}, '
                            'or the same inside {"mcpServers": {...}}.')  # fmt: skip
        parser.add_argument("--allowed-tools", action="append", metavar="NAMES",
                            help="Comma-separated tool names or patterns (read_file, notes__*, Bash …); repeatable. Default: the agent's, else all.")  # fmt: skip
        parser.add_argument("--model", help="Model name (overrides the agent's LLM config).")
        parser.add_argument(
            "--max-turns",
            type=int,
            help="Most model calls in this run (default: the agent's, else ORCHESTRATOR_DEFAULT_MAX_TURNS).",
        )
        parser.add_argument(
            "--resume-session-id", metavar="ID", help="Continue this stored session with its whole history."
        )
        parser.add_argument(
            "--user",
            metavar="EMAIL",
            help="Owner of a new session (default: the first active superuser, else a system user made on first use).",
        )
        parser.add_argument(
            "--approve",
            action="store_true",
            help="Allow every tool call the agent's approval policy holds. Without it they are asked about on the "
            "terminal when it is interactive, else denied.",
        )
        parser.add_argument("--json", action="store_true", help="One JSON event per line on stdout.")

    def _ask(self, call) -> bool:
        """The operator's decision on a held tool call, at the terminal."""
        shown = json.dumps(call.input, ensure_ascii=False)
        self.stderr.write(f"\n{call.name} wants to run with {shown[:2000]}\nAllow it? [y/N] ", ending="")
        self.stderr.flush()
        try:
            answer = sys.stdin.readline()
        except (OSError, ValueError):
            return False
        return answer.strip().lower() in {"y", "yes"}

    def handle(self, *args, **options):
        out = _Unterminated(self.stdout)
        sink = JsonLinesSink(out) if options["json"] else TextSink(out)
        verbose = options["verbosity"] >= 2
        if getattr(self, "_called_from_command_line", False) and not verbose:
            for name in NOISY_LOGGERS:
                logging.getLogger(name).setLevel(logging.WARNING)
        try:
            run_options = OrchestratorOptions(
                message=self._message(options),
                agent_slug=options["agent"],
                system_prompt=_read(options["system_prompt_file"], "system prompt file")
                if options["system_prompt_file"]
                else None,
                workspace=options["workspace_dir"],
                mcp_config=options["mcp_config"],
                allowed_tools=_split(options["allowed_tools"]),
                model=options["model"],
                max_turns=options["max_turns"],
                resume_session_id=options["resume_session_id"],
                user_email=options["user"],
                verbose=verbose,
                approve="allow" if options["approve"] else ("ask" if _interactive(options) else "deny"),
                ask=self._ask,
            )
            if run_options.max_turns is not None and run_options.max_turns < 1:
                raise OrchestratorError("bad_arguments", "--max-turns must be at least 1")
            asyncio.run(_interruptible(run_orchestrator(run_options, sink)))
        except OrchestratorError as exc:
            if options["json"]:
                sink.emit("error", code=exc.code, message=exc.message)
            self._fail(exc.message, 1)
        except DatabaseError as exc:
            first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            if options["json"]:
                sink.emit("error", code="database_error", message=first_line)
            self._fail(f"database error: {first_line}", 1)
        except KeyboardInterrupt:
            resume = f"; continue with --resume-session-id {sink.session_id}" if sink.session_id else ""
            if getattr(self, "_called_from_command_line", False) and not options["json"]:
                self.stdout.write("")  # end the partial answer's line
            self._fail(f"interrupted{resume}", 130)

    def _fail(self, message: str, status: int) -> None:
        if getattr(self, "_called_from_command_line", False):
            self.stderr.write(f"error: {message}")
            sys.exit(status)
        raise CommandError(message, returncode=status)

    def _message(self, options) -> str:
        if options["message"] is not None:
            return options["message"]
        if options["message_file"]:
            return _read(options["message_file"], "message file")
        if options["stdin"]:
            return sys.stdin.read()
        raise OrchestratorError("empty_message", "no message: give -m TEXT, --message-file PATH or --stdin")


async def _interruptible(run):
    """Run `run`; SIGINT or SIGTERM stops it (the partial answer is kept) and ends in KeyboardInterrupt.

    Our own handlers, not Python's: a process started by a parent that ignores SIGINT (a background job of a
    non-interactive shell, nohup, some CI runners) inherits the ignore, and Python then installs no handler."""
    if threading.current_thread() is not threading.main_thread():  # signal handlers live in the main thread
        return await run
    task = asyncio.current_task()
    loop = asyncio.get_running_loop()
    received: list[int] = []

    def stop(signum: int) -> None:
        received.append(signum)
        task.cancel()

    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop, signum)
    try:
        return await run
    except asyncio.CancelledError:
        if received:
            raise KeyboardInterrupt from None
        raise
    finally:
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(signum)


class _Unterminated:
    """self.stdout without the newline Django's OutputWrapper adds to every write: deltas stream."""

    def __init__(self, wrapper):
        self.wrapper = wrapper

    def write(self, text: str) -> None:
        self.wrapper.write(text, ending="")

    def flush(self) -> None:
        self.wrapper.flush()


def _read(path: str, what: str) -> str:
    try:
        return Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise OrchestratorError("bad_arguments", f"{what} not found: {path}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise OrchestratorError("bad_arguments", f"{what} can't be read: {path} ({exc})") from None


def _split(values: list[str] | None) -> list[str] | None:
    if values is None:
        return None
    return [name.strip() for value in values for name in value.replace(" ", ",").split(",") if name.strip()]
