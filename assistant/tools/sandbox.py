"""`run_shell` for server-side turns: one command inside bubblewrap, confined to the session's workspace.

The command sees a read-only system (/usr and its /bin, /lib links, a few files of /etc), /proc, a
read-only /dev, a private /tmp (a link to /dev/shm: a tmpfs of SANDBOX_TMP_BYTES, memory counted in the
memory limit), and the workspace at /workspace, the only writable path kept after it ends. All
namespaces are new (no network: only a loopback of its own), it runs in a session of its own, dies
with the server, gets a clean environment, and runs under limits: wall time (the whole sandbox is
killed), memory (address space and /tmp), processes, file size, CPU time, output (past the limit it
is killed), and the workspace's quota (sandbox_quota.py: past it the command is killed and what it
wrote removed).

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
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from django.conf import settings

from assistant.tools import sandbox_quota
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
    # The workspace's quota (sandbox_quota.py); None: only file_bytes per file.
    workspace_bytes: int | None = None
    workspace_entries: int | None = None

    @classmethod
    def from_settings(cls) -> SandboxLimits:
        return cls(
            timeout=settings.SANDBOX_TIMEOUT,
            memory_bytes=settings.SANDBOX_MEMORY_BYTES,
            processes=settings.SANDBOX_MAX_PROCESSES,
            file_bytes=settings.SANDBOX_FILE_BYTES,
            output_chars=settings.SANDBOX_OUTPUT_LIMIT,
            tmp_bytes=settings.SANDBOX_TMP_BYTES,
            workspace_bytes=settings.WORKSPACE_QUOTA_BYTES,
            workspace_entries=settings.WORKSPACE_MAX_ENTRIES,
        )

    @property
    def quota(self) -> tuple[int, int] | None:
        """(bytes, entries) the workspace may hold, or None when it has no quota."""
        if self.workspace_bytes is None and self.workspace_entries is None:
            return None
        return (
            self.workspace_bytes if self.workspace_bytes is not None else sys.maxsize,
            self.workspace_entries if self.workspace_entries is not None else sys.maxsize,
        )


def _as_root() -> bool:
    return os.geteuid() == 0


def bwrap_command(
    workspace: Path,
    command: str,
    limits: SandboxLimits,
    *,
    info_fd: int | None = None,
    seccomp_fd: int | None = None,
    file_bytes: int | None = None,
) -> list[str]:
    """`file_bytes`: the largest file the command may write (default: the limits'). ValueError when
    /tmp would take all the memory."""
    address_space = limits.memory_bytes - limits.tmp_bytes
    if address_space <= 0:
        raise ValueError("The sandbox's /tmp (tmp_bytes) must be smaller than its memory (memory_bytes).")
    bwrap = shutil.which(settings.SANDBOX_BWRAP) or settings.SANDBOX_BWRAP
    argv = [bwrap, "--ro-bind", "/usr", "/usr"]
    if info_fd is not None:  # bubblewrap writes {"child-pid": …} there: the sandbox's init, to kill
        argv += ["--info-fd", str(info_fd)]
    if seccomp_fd is not None:  # fallocate refused (sandbox_quota.py)
        argv += ["--seccomp", str(seccomp_fd)]
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
    file_bytes = limits.file_bytes if file_bytes is None else file_bytes
    argv += [
        "--", "/usr/bin/prlimit", f"--as={address_space}", f"--nproc={limits.processes}",
        f"--fsize={file_bytes}", f"--cpu={cpu}", "--core=0", "--",
        "/bin/sh", "-c", command,
    ]  # fmt: skip
    return argv


def _drop_to_sandbox_user() -> dict:
    """subprocess arguments that run the sandbox as SANDBOX_UID when we are root."""
    if not _as_root():
        return {}
    return {"user": settings.SANDBOX_UID, "group": settings.SANDBOX_UID, "extra_groups": []}


def _note_workspace(workspace: Path, stop: Stop | None = None) -> sandbox_quota.Before:
    """The workspace as the command finds it (sandbox_quota.Before). As root, everything in it (uploads,
    files the tools wrote) is handed to the sandbox's user first, so the command can change it."""
    return sandbox_quota.note(workspace, owner=settings.SANDBOX_UID if _as_root() else None)


@contextmanager
def _seccomp_filter() -> Iterator[int | None]:
    """A file descriptor holding the sandbox's seccomp filter, for bubblewrap to read (None: no filter
    for this machine's architecture)."""
    program = sandbox_quota.seccomp_program()
    if program is None:
        yield None
        return
    fd = os.memfd_create("conduit-sandbox-seccomp", 0)
    try:
        os.write(fd, program)
        os.lseek(fd, 0, os.SEEK_SET)
        yield fd
    finally:
        os.close(fd)


@lru_cache(maxsize=1)
def sandbox_unavailable_reason() -> str | None:
    """None when bubblewrap runs a command here with every namespace; else why not. Probed once."""
    if not shutil.which(settings.SANDBOX_BWRAP):
        return f"bubblewrap ({settings.SANDBOX_BWRAP}) is not installed (Debian: apt-get install bubblewrap)"
    if not os.path.exists("/usr/bin/prlimit"):
        return "prlimit (util-linux) is missing"
    import tempfile

    with tempfile.TemporaryDirectory(prefix="conduit-sandbox-probe-") as probe, _seccomp_filter() as seccomp:
        _note_workspace(Path(probe))
        limits = SandboxLimits(timeout=10, memory_bytes=256 << 20, processes=32, file_bytes=1024, output_chars=100)
        try:
            done = subprocess.run(
                bwrap_command(Path(probe), "echo ok > probe && cat probe", limits, seccomp_fd=seccomp),
                capture_output=True, timeout=15, stdin=subprocess.DEVNULL, env={}, **_drop_to_sandbox_user(),
                pass_fds=() if seccomp is None else (seccomp,),
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
    """Run `command` in the sandbox; its combined output, or SandboxResult when it fails or took the
    workspace past its quota (what it wrote is then removed: sandbox_quota.py)."""
    before = await in_tool_thread(_note_workspace, workspace)  # the tools' threads, never the default executor
    quota = limits.quota
    file_bytes = limits.file_bytes
    if quota is not None:
        file_bytes = sandbox_quota.fsize_for(before, file_bytes=limits.file_bytes, quota_bytes=quota[0])
    info_read, info_write = os.pipe()
    try:
        with _seccomp_filter() as seccomp:
            argv = bwrap_command(
                workspace, command, limits, info_fd=info_write, seccomp_fd=seccomp, file_bytes=file_bytes
            )
            process = await asyncio.create_subprocess_exec(
                *argv,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.STDOUT,
                env={},
                pass_fds=(info_write,) if seccomp is None else (info_write, seccomp),
                start_new_session=True,  # bubblewrap leads a process group of its own
                **_drop_to_sandbox_user(),
            )
    except BaseException:
        os.close(info_read)
        raise
    finally:
        os.close(info_write)
    watch = asyncio.create_task(_watch_quota(workspace, process, quota)) if quota is not None else None
    failure: SandboxResult | None = None
    removed: list[str] = []
    try:
        output = await _run(process, info_read, limits)
    except SandboxResult as exc:
        failure = exc
    finally:
        if watch is not None:
            watch.cancel()
        if quota is not None:  # however the command ended, a stop included
            removed = await asyncio.shield(_after(process, workspace, before, quota))
    stopped = watch is not None and watch.done() and not watch.cancelled() and watch.exception() is None
    if removed or (stopped and watch.result()):
        told = str(failure) if failure is not None else output
        raise SandboxResult(_cap(f"{_over_quota_text(quota, removed)}\n{told}".rstrip(), limits.output_chars))
    if failure is not None:
        raise failure
    return output


async def _after(
    process: asyncio.subprocess.Process, workspace: Path, before: sandbox_quota.Before, quota: tuple[int, int]
) -> list[str]:
    """What went over the quota, removed once nothing of the command is left: a command still running
    could swap a directory for a symlink under a removal made as root."""
    if process.returncode is None:  # stopped: its reaping goes on, shielded (_run)
        await process.wait()
    return await in_tool_thread(_remove_overflow, workspace, before, quota)


def _remove_overflow(workspace: Path, before: sandbox_quota.Before, quota: tuple[int, int], stop: Stop) -> list[str]:
    return sandbox_quota.remove_overflow(workspace, before, quota_bytes=quota[0], max_entries=quota[1])


def _over_quota_text(quota: tuple[int, int] | None, removed: list[str]) -> str:
    assert quota is not None
    limits = f"{quota[0]} bytes, {quota[1]} files and directories"
    if not removed:
        return f"The workspace is over its quota ({limits}); delete files to make room."
    shown = ", ".join(removed[:10]) + (f" and {len(removed) - 10} more" if len(removed) > 10 else "")
    return f"The command took the workspace past its quota ({limits}); what it wrote there was removed: {shown}."


async def _watch_quota(workspace: Path, process: asyncio.subprocess.Process, quota: tuple[int, int]) -> bool:
    """Measure the workspace while the command runs; past the quota, kill the sandbox (True)."""
    while True:
        await asyncio.sleep(sandbox_quota.CHECK_SECONDS)
        usage = await in_tool_thread(_measure, workspace, quota[1])
        if sandbox_quota.over(usage, quota_bytes=quota[0], max_entries=quota[1]):
            _kill(process)
            return True


def _measure(workspace: Path, max_entries: int, stop: Stop) -> sandbox_quota.WorkspaceUsage:
    return sandbox_quota.measure(workspace, max_entries)


def _kill(process: asyncio.subprocess.Process) -> None:
    """Kill the sandbox's init (all of it dies with it; bubblewrap then exits), or bubblewrap's group
    while the init isn't known yet. The caller still reads the output to its end and waits."""
    init = getattr(process, "sandbox_init", None)
    try:
        if init is not None:
            os.kill(init, signal.SIGKILL)
        else:
            os.killpg(process.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


async def _run(process: asyncio.subprocess.Process, info_read: int, limits: SandboxLimits) -> str:
    """The command's output once it ends; SandboxResult when it fails, times out or says too much."""
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
