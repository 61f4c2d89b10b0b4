"""`run_shell` for server-side turns: one command inside bubblewrap, confined to the session's workspace.

The command sees a read-only system (/usr and its /bin, /lib links, a few files of /etc), /proc, a
read-only /dev, a private /tmp (a link to /dev/shm: a tmpfs of SANDBOX_TMP_BYTES, memory counted in the
memory limit), and the workspace at /workspace, the only writable path kept after it ends. All
namespaces are new (no network: only a loopback of its own), it runs in a session of its own, dies
with the server, gets a clean environment, and runs under limits: wall time (the whole sandbox is
killed), memory (address space and /tmp), processes, file size, CPU time, and output (past the limit
it is killed).

When the server runs as root, the command runs as SANDBOX_UID (root ignores the process limit, and
needn't own anything the command may touch); the workspace is handed to that user first.

Whether bubblewrap can run here (installed, allowed to create namespaces) is probed once; where it
can't, the shell tool is not offered and the server says so once (`sandbox_check_at_startup`).
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import shutil
import signal
import subprocess
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from django.conf import settings

from assistant.tools.threads import Stop, in_tool_thread

logger = logging.getLogger(__name__)

MOUNT_POINT = "/workspace"
_SYSTEM_LINKS = {"/bin": "usr/bin", "/sbin": "usr/sbin", "/lib": "usr/lib", "/lib64": "usr/lib64"}
_ETC_FILES = ("/etc/alternatives", "/etc/ld.so.cache", "/etc/ld.so.conf", "/etc/ld.so.conf.d", "/etc/localtime",
              "/etc/mime.types", "/etc/ssl/certs")  # fmt: skip
_ENV = {"PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": MOUNT_POINT, "LANG": "C.UTF-8", "TMPDIR": "/tmp",
        "PWD": MOUNT_POINT}  # fmt: skip


class SandboxResult(Exception):
    """A command that did not end well (exit code, timeout, too much output): the model reads it."""


@dataclass(frozen=True)
class SandboxLimits:
    timeout: float
    memory_bytes: int  # each process's address space and /tmp together
    processes: int
    file_bytes: int
    output_chars: int
    tmp_bytes: int = 64 * 1024 * 1024  # /tmp (= /dev/shm), a tmpfs: memory, taken from memory_bytes

    @classmethod
    def from_settings(cls) -> SandboxLimits:
        return cls(
            timeout=settings.SANDBOX_TIMEOUT,
            memory_bytes=settings.SANDBOX_MEMORY_BYTES,
            processes=settings.SANDBOX_MAX_PROCESSES,
            file_bytes=settings.SANDBOX_FILE_BYTES,
            output_chars=settings.SANDBOX_OUTPUT_LIMIT,
            tmp_bytes=settings.SANDBOX_TMP_BYTES,
        )


def _as_root() -> bool:
    return os.geteuid() == 0


def bwrap_command(workspace: Path, command: str, limits: SandboxLimits, *, info_fd: int | None = None) -> list[str]:
    """ValueError when /tmp would take all the memory."""
    address_space = limits.memory_bytes - limits.tmp_bytes
    if address_space <= 0:
        raise ValueError("The sandbox's /tmp (tmp_bytes) must be smaller than its memory (memory_bytes).")
    bwrap = shutil.which(settings.SANDBOX_BWRAP) or settings.SANDBOX_BWRAP
    argv = [bwrap, "--ro-bind", "/usr", "/usr"]
    if info_fd is not None:  # bubblewrap writes {"child-pid": …} there: the sandbox's init, to kill
        argv += ["--info-fd", str(info_fd)]
    for link, target in _SYSTEM_LINKS.items():
        if os.path.exists(link):
            argv += ["--symlink", target, link]
    for path in _ETC_FILES:
        if os.path.exists(path):
            argv += ["--ro-bind", path, path]
    # The sandbox's root and its /dev are tmpfs without a size: both read-only once set up, so the only
    # memory a command can fill with files is /dev/shm's, of tmp_bytes, which /tmp is a link to.
    argv += [
        "--proc", "/proc", "--dev", "/dev", "--size", str(limits.tmp_bytes), "--tmpfs", "/dev/shm",
        "--symlink", "/dev/shm", "/tmp", "--bind", str(workspace), MOUNT_POINT, "--chdir", MOUNT_POINT,
        "--remount-ro", "/dev", "--remount-ro", "/",
        "--unshare-all", "--new-session", "--die-with-parent", "--cap-drop", "ALL",
        "--hostname", "sandbox", "--clearenv",
    ]  # fmt: skip
    for name, value in _ENV.items():
        argv += ["--setenv", name, value]
    # Limits set inside, after bubblewrap made its namespaces (it needs a few processes itself).
    # CPU time bounds a busy loop that sleeps through the wall-clock timer's grace.
    cpu = max(1, int(limits.timeout) + 1)
    argv += [
        "--", "/usr/bin/prlimit", f"--as={address_space}", f"--nproc={limits.processes}",
        f"--fsize={limits.file_bytes}", f"--cpu={cpu}", "--core=0", "--",
        "/bin/sh", "-c", command,
    ]  # fmt: skip
    return argv


def _drop_to_sandbox_user() -> dict:
    """subprocess arguments that run the sandbox as SANDBOX_UID when we are root."""
    if not _as_root():
        return {}
    return {"user": settings.SANDBOX_UID, "group": settings.SANDBOX_UID, "extra_groups": []}


def _hand_over(workspace: Path, stop: Stop | None = None) -> None:
    """As root, the workspace (and everything in it, uploads and files the tools wrote) belongs to
    the sandbox user, so the command can change it; the server (root) still can too."""
    if not _as_root():
        return
    uid = settings.SANDBOX_UID
    os.chown(workspace, uid, uid)
    for directory, dirnames, filenames in os.walk(workspace, followlinks=False):
        for name in dirnames + filenames:
            try:
                os.chown(os.path.join(directory, name), uid, uid, follow_symlinks=False)
            except OSError:
                pass


@lru_cache(maxsize=1)
def sandbox_unavailable_reason() -> str | None:
    """None when bubblewrap runs a command here with every namespace; else why not. Probed once."""
    if not shutil.which(settings.SANDBOX_BWRAP):
        return f"bubblewrap ({settings.SANDBOX_BWRAP}) is not installed (Debian: apt-get install bubblewrap)"
    if not os.path.exists("/usr/bin/prlimit"):
        return "prlimit (util-linux) is missing"
    import tempfile

    with tempfile.TemporaryDirectory(prefix="conduit-sandbox-probe-") as probe:
        _hand_over(Path(probe))
        limits = SandboxLimits(timeout=10, memory_bytes=256 * 1024 * 1024, processes=32, file_bytes=1024, output_chars=100)
        try:
            done = subprocess.run(
                bwrap_command(Path(probe), "echo ok > probe && cat probe", limits),
                capture_output=True, timeout=15, stdin=subprocess.DEVNULL, env={}, **_drop_to_sandbox_user(),
            )  # fmt: skip
        except (OSError, subprocess.SubprocessError) as exc:
            return f"bubblewrap could not run: {exc}"
        if done.returncode != 0 or done.stdout.strip() != b"ok":
            detail = done.stderr.decode(errors="replace").strip().splitlines()
            return "bubblewrap can't create its namespaces here" + (f" ({detail[-1][:200]})" if detail else "")
    return None


def sandbox_available() -> bool:
    return sandbox_unavailable_reason() is None


def sandbox_check_at_startup() -> None:
    """Log once, when a server starts, if server-side turns get no shell tool."""
    reason = sandbox_unavailable_reason()
    if reason is not None:
        logger.warning("run_shell is not offered to agents (no sandbox): %s", reason)


async def run_sandboxed(workspace: Path, command: str, limits: SandboxLimits) -> str:
    """Run `command` in the sandbox; its combined output, or SandboxResult when it fails."""
    await in_tool_thread(_hand_over, workspace)  # the tools' threads, never the default executor
    info_read, info_write = os.pipe()
    try:
        process = await asyncio.create_subprocess_exec(
            *bwrap_command(workspace, command, limits, info_fd=info_write),
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
            env={},
            pass_fds=(info_write,),
            start_new_session=True,  # bubblewrap leads a process group of its own
            **_drop_to_sandbox_user(),
        )
    finally:
        os.close(info_write)
    chunks: list[bytes] = []
    kept = 0
    byte_limit = limits.output_chars * 4  # decoded and capped in characters below
    too_much = False

    async def drain() -> None:
        nonlocal kept, too_much
        assert process.stdout is not None
        while chunk := await process.stdout.read(65536):
            chunks.append(chunk[: byte_limit - kept])
            kept += len(chunks[-1])
            if kept >= byte_limit:
                too_much = True
                return
        await process.wait()

    try:
        process.sandbox_init = await _child_pid(info_read)  # type: ignore[attr-defined]
        await asyncio.wait_for(drain(), limits.timeout)
    except TimeoutError:
        await _reap(process)
        raise SandboxResult(
            _cap(f"Command timed out after {limits.timeout:g} s and was killed.\n{_text(chunks)}", limits.output_chars)
        ) from None
    except asyncio.CancelledError:  # the turn was stopped: the command goes too
        await asyncio.shield(_reap(process))
        raise
    if too_much:
        await _reap(process)
        raise SandboxResult(
            _text(chunks)[: limits.output_chars]
            + f"\n… [output truncated at {limits.output_chars} characters; the command was killed]"
        )
    output = _text(chunks)
    if process.returncode != 0:
        reason = _signal_reason(process.returncode)
        raise SandboxResult(_cap(f"{reason}\n{output}".rstrip(), limits.output_chars))
    output = _cap(output, limits.output_chars)
    return output if output.strip() else "(no output, exit code 0)"


def _text(chunks: list[bytes]) -> str:
    return b"".join(chunks).decode("utf-8", errors="replace")


def _cap(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[:limit] + f"\n… [output truncated: {len(text) - limit} more characters]"


def _signal_reason(code: int) -> str:
    if code < 0:
        return f"Killed by signal {signal.Signals(-code).name}"
    if code > 128 and code - 128 in signal.Signals._value2member_map_:
        return f"Exit code {code} (signal {signal.Signals(code - 128).name}: a limit may have been reached)"
    return f"Exit code {code}"


async def _child_pid(fd: int) -> int | None:
    """The sandbox's init process, from bubblewrap's --info-fd (closed when it has written it), read on
    the event loop: a thread blocked on it would be one less for everything else."""
    reader = asyncio.StreamReader()
    protocol = asyncio.StreamReaderProtocol(reader)
    transport, _ = await asyncio.get_running_loop().connect_read_pipe(lambda: protocol, os.fdopen(fd, "rb", 0))
    try:
        data = await reader.read()  # to its end: a few bytes of JSON
    finally:
        transport.close()
    try:
        return int(json.loads(data)["child-pid"])
    except (ValueError, KeyError, TypeError):
        return None


async def _reap(process: asyncio.subprocess.Process) -> None:
    """Kill the sandbox and wait for it. The sandbox's init goes first: every process of its pid
    namespace dies with it, and bubblewrap, its parent, reaps it and exits (killed first, it would
    leave the init to the machine's pid 1, a zombie where that doesn't reap). Then bubblewrap's
    group, if it lingers. The output is read to the end: asyncio's wait() returns only once the
    pipe is closed, and a pipe nobody reads stays paused, never seeing its end."""
    init = getattr(process, "sandbox_init", None)
    if init is not None:
        try:
            os.kill(init, signal.SIGKILL)
        except ProcessLookupError:
            pass
    assert process.stdout is not None

    async def drain_and_wait() -> None:
        while await process.stdout.read(65536):
            pass
        await process.wait()

    ended = asyncio.ensure_future(drain_and_wait())
    if init is not None:
        await asyncio.wait([ended], timeout=2)
    if not ended.done():
        try:
            os.killpg(process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    await ended
