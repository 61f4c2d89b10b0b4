"""The sandbox's disk and memory (issue 33, item 6): /tmp is a small tmpfs taken from the memory limit, the
rest of the sandbox's own filesystem is read-only, and the workspace's quota holds for what commands write.
Real bubblewrap, real files; the limits come from settings, as in a turn."""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path

import pytest

from agents.workspaces import workspace_usage
from assistant.tests.tools.test_sandbox import _sandbox_ps as sandbox_ps
from assistant.tests.tools.test_sandbox import no_sandbox_processes_left, run, shell
from assistant.tools.sandbox import SandboxLimits

MiB = 1024 * 1024


@pytest.fixture
def workspace(_workspaces_dir) -> Path:
    root = _workspaces_dir / "1"
    root.mkdir()
    return root


@pytest.fixture
def limits(settings) -> SandboxLimits:
    settings.SANDBOX_TIMEOUT = 10
    settings.SANDBOX_MEMORY_BYTES = 256 * MiB
    settings.SANDBOX_TMP_BYTES = 8 * MiB
    settings.SANDBOX_FILE_BYTES = 64 * MiB
    return SandboxLimits.from_settings()


@pytest.fixture
def quota(settings) -> SandboxLimits:
    settings.SANDBOX_TIMEOUT = 10
    settings.SANDBOX_FILE_BYTES = 64 * MiB
    settings.WORKSPACE_QUOTA_BYTES = 4 * MiB
    settings.WORKSPACE_MAX_ENTRIES = 1000
    return SandboxLimits.from_settings()


# --- memory: /tmp and the sandbox's own filesystem --------------------------------------------------


async def test_a_big_file_in_tmp_fails_at_the_tmpfs_size(workspace, limits):
    outcome = await run(shell(workspace, limits), "head -c 50000000 /dev/zero > /tmp/big; wc -c < /tmp/big")
    assert "No space left on device" in outcome.content
    assert int(outcome.content.splitlines()[-1]) <= 8 * MiB


async def test_tmp_and_dev_shm_share_one_budget(workspace, limits):
    command = (
        "head -c 6000000 /dev/zero > /tmp/a && head -c 6000000 /dev/zero > /dev/shm/b; cat /tmp/a /dev/shm/b | wc -c"
    )
    outcome = await run(shell(workspace, limits), command)
    assert "No space left on device" in outcome.content
    assert int(outcome.content.splitlines()[-1]) <= 8 * MiB


@pytest.mark.parametrize("target", ["/big", "/dev/big", "/etc/big"])
async def test_nothing_else_of_the_sandbox_takes_files(workspace, limits, target):
    """Its root and /dev are tmpfs of their own too, as large as the machine allows: read-only once set up."""
    outcome = await run(shell(workspace, limits), f"head -c 20000000 /dev/zero > {target} && echo wrote")
    assert outcome.is_error is True and "wrote" not in outcome.content


async def test_tmp_is_counted_in_the_memory_limit(workspace, settings):
    """Each process may address SANDBOX_MEMORY_BYTES less /tmp's size: 192 MiB here, not 256."""
    settings.SANDBOX_MEMORY_BYTES, settings.SANDBOX_TMP_BYTES = 256 * MiB, 64 * MiB
    tools = shell(workspace, SandboxLimits.from_settings())
    allocate = "python3 -c 'x = bytearray({} * 1024**2); print(\"allocated\")'"
    assert (await run(tools, allocate.format(150))).content == "allocated\n"
    refused = await run(tools, allocate.format(200))
    assert refused.is_error is True and "MemoryError" in refused.content and "allocated" not in refused.content


async def test_what_programs_need_of_tmp_still_works(workspace, limits):
    lock = "python3 -c 'import multiprocessing as m; m.Lock(); print(\"lock\")'"  # a semaphore in /dev/shm
    command = f"d=$(mktemp -d) && echo ok > $d/f && cat $d/f && {lock}"
    outcome = await run(shell(workspace, limits), command)
    assert outcome.is_error is False and outcome.content == "ok\nlock\n"


# --- disk: the workspace's quota --------------------------------------------------------------------


async def test_a_big_file_stops_at_the_room_left_in_the_workspace(workspace, quota):
    """The issue's attack: 301 MiB written into a workspace whose quota was 100 MiB."""
    (workspace / "upload.txt").write_bytes(b"u" * MiB)
    outcome = await run(shell(workspace, quota), "head -c 30000000 /dev/zero > big.bin; ls -l big.bin")
    assert "File size limit exceeded" in outcome.content
    assert (workspace / "big.bin").stat().st_size <= 3 * MiB  # the room left: 4 MiB less the upload
    assert workspace_usage(workspace).bytes <= 4 * MiB and (workspace / "upload.txt").read_bytes() == b"u" * MiB


async def test_many_files_past_the_quota_are_removed_largest_first_and_the_model_reads_which(workspace, quota):
    (workspace / "upload.txt").write_bytes(b"u" * MiB)
    command = "for n in 1 2 3 4 5 6; do head -c 1000000 /dev/zero > f$n; done; head -c 10 /dev/zero > small; echo done"
    outcome = await run(shell(workspace, quota), command)
    assert outcome.is_error is True
    assert outcome.content.startswith(
        f"The command took the workspace past its quota ({4 * MiB} bytes, 1000 files and directories); "
        "what it wrote there was removed: f1, f2, f3."
    )
    assert outcome.content.endswith("\ndone")
    assert sorted(p.name for p in workspace.iterdir()) == ["f4", "f5", "f6", "small", "upload.txt"]
    assert workspace_usage(workspace).bytes <= 4 * MiB


async def test_fallocate_cant_reserve_disk_past_the_file_size_limit(workspace, quota):
    """fallocate --keep-size reserves disk without growing the file, and RLIMIT_FSIZE doesn't see it."""
    outcome = await run(shell(workspace, quota), "touch f && fallocate -n -l 50000000 f; echo rc=$?")
    assert "rc=0" not in outcome.content
    assert (workspace / "f").stat().st_blocks * 512 < MiB


async def test_a_command_filling_the_workspace_is_stopped_while_it_runs(workspace, quota):
    started = time.monotonic()
    command = "for n in $(seq 1 200); do head -c 1000000 /dev/zero > f$n; done; sleep 30; echo finished"
    outcome = await run(shell(workspace, quota), command)
    assert time.monotonic() - started < 4  # stopped at a check (every 0.5 s), not at its 10 s timeout
    assert outcome.is_error is True and "past its quota" in outcome.content and "finished" not in outcome.content
    assert workspace_usage(workspace).bytes <= 4 * MiB
    assert await no_sandbox_processes_left(), sandbox_ps()


async def test_too_many_files_are_removed_too(workspace, quota):
    (workspace / "mine").mkdir()
    (workspace / "mine" / "keep.txt").write_text("keep")
    outcome = await run(shell(workspace, quota), "mkdir -p made/deeper && cd made/deeper && seq 1 3000 | xargs touch")
    assert outcome.is_error is True and "past its quota" in outcome.content
    assert workspace_usage(workspace).entries <= 1000
    assert (workspace / "mine" / "keep.txt").read_text() == "keep"


async def test_a_stopped_command_leaves_the_workspace_within_its_quota(workspace, quota):
    tools = shell(workspace, quota)
    task = asyncio.create_task(run(tools, "head -c 3000000 /dev/zero > a; head -c 3000000 /dev/zero > b; sleep 30"))
    await asyncio.sleep(0.3)  # written, before the first check
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert workspace_usage(workspace).bytes <= 4 * MiB
    assert await no_sandbox_processes_left(), sandbox_ps()


async def test_within_the_quota_nothing_is_removed(workspace, quota):
    (workspace / "upload.txt").write_bytes(b"u" * MiB)
    outcome = await run(shell(workspace, quota), "head -c 2000000 /dev/zero > out.bin && echo ok")
    assert outcome.is_error is False and outcome.content == "ok\n"
    assert sorted(os.listdir(workspace)) == ["out.bin", "upload.txt"]
