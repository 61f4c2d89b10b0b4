"""The sandbox's memory (issue 33, item 6): /tmp is a small tmpfs taken from the memory limit, and the rest
of the sandbox's own filesystem is read-only. Real bubblewrap, real files; the limits come from settings,
as in a turn."""

from __future__ import annotations

from pathlib import Path

import pytest

from assistant.tests.tools.test_sandbox import run, shell
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
