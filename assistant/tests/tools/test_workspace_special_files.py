"""Named pipes, sockets and other files that aren't regular (issue 33, item 2): the file tools refuse them
at once, naming what they are, and never open them in a way that waits; searches leave them out. A
`read_file` of a FIFO used to hold a thread of asyncio's default executor until someone wrote to the pipe."""

from __future__ import annotations

import asyncio
import os
import socket
import time

import pytest

from assistant.engine import ToolCall
from assistant.tools.workspace import BuiltinTools, Workspace


@pytest.fixture
def root(tmp_path):
    directory = tmp_path / "ws"
    directory.mkdir()
    (directory / "notes.txt").write_text("a pipe is next to me\n")
    return directory


@pytest.fixture
def tools(root):
    return BuiltinTools(Workspace(root), shell_timeout=5, output_limit=5000, shell_env={})


async def call(tools, name, **arguments):
    return await tools.run(ToolCall("toolu_1", name, arguments))


def release(pipe) -> None:
    """Wake whatever waits on `pipe` (a build that opens it blocking: a reader waits for a writer, a writer
    for a reader), so that a failing test doesn't leave threads stuck for the rest of the run."""
    for flags in (os.O_WRONLY | os.O_NONBLOCK, os.O_RDONLY | os.O_NONBLOCK):
        try:
            os.close(os.open(pipe, flags))
        except OSError:
            pass


@pytest.fixture
def pipe(root):
    path = root / "p"
    os.mkfifo(path)
    yield path
    release(path)


@pytest.mark.parametrize(
    ("name", "arguments"),
    [
        ("read_file", {"path": "p"}),
        ("write_file", {"path": "p", "content": "x"}),
        ("edit_file", {"path": "p", "old_string": "a", "new_string": "b"}),
        ("grep", {"pattern": "a", "path": "p"}),
    ],
)
async def test_a_named_pipe_is_refused_at_once_with_what_it_is(tools, pipe, name, arguments):
    started = time.monotonic()
    try:
        outcome = await asyncio.wait_for(call(tools, name, **arguments), 5)
    finally:
        release(pipe)
    assert time.monotonic() - started < 1
    assert outcome.is_error is True
    assert outcome.content == "p is a named pipe (FIFO): the file tools read and write regular files only."


async def test_a_socket_is_refused_with_what_it_is(tools, root):
    server = socket.socket(socket.AF_UNIX)
    server.bind(str(root / "s.sock"))
    try:
        outcome = await asyncio.wait_for(call(tools, "read_file", path="s.sock"), 5)
    finally:
        server.close()
    assert outcome.is_error is True and outcome.content.startswith("s.sock is a socket:")


async def test_searches_leave_pipes_out_and_a_listing_says_what_they_are(tools, pipe):
    try:
        grep = await asyncio.wait_for(call(tools, "grep", pattern="pipe"), 5)
        glob = await asyncio.wait_for(call(tools, "glob", pattern="*"), 5)
        listing = await asyncio.wait_for(call(tools, "list_directory"), 5)
    finally:
        release(pipe)
    assert grep.content == "notes.txt:1: a pipe is next to me"
    assert glob.content == "notes.txt"
    assert listing.content == "notes.txt  (21 bytes)\np  (a named pipe (FIFO))"


async def test_a_symlink_to_a_pipe_is_refused_too(tools, root, pipe):
    (root / "innocent.txt").symlink_to(pipe)
    try:
        outcome = await asyncio.wait_for(call(tools, "read_file", path="innocent.txt"), 5)
    finally:
        release(pipe)
    assert outcome.is_error is True and "named pipe" in outcome.content


async def test_pipes_never_take_the_threads_that_other_calls_and_the_process_need(tools, root, pipe):
    """The issue's attack, repeated: each `read_file p` used to hold one of the default executor's few
    threads for good; then nobody's tool call, and nothing else using that executor, got to run."""
    loop = asyncio.get_running_loop()
    try:
        rounds = [asyncio.create_task(call(tools, "read_file", path="p")) for _ in range(12)]
        await asyncio.wait(rounds, timeout=2)
        started = time.monotonic()
        other = await asyncio.wait_for(call(tools, "read_file", path="notes.txt"), 5)
        lookup = await asyncio.wait_for(loop.run_in_executor(None, socket.getaddrinfo, "127.0.0.1", 80), 5)
        assert other.is_error is False and "a pipe is next to me" in other.content and lookup
        assert time.monotonic() - started < 2
        assert all(task.done() and task.result().is_error for task in rounds)
    finally:
        release(pipe)
        await asyncio.sleep(0.1)
        release(pipe)


async def test_a_pipe_with_a_reader_is_never_written_through(tools, root):
    """A FIFO with a reader would open for writing at once: it is refused all the same."""
    os.mkfifo(root / "out.txt")
    reader = os.open(root / "out.txt", os.O_RDONLY | os.O_NONBLOCK)
    try:
        outcome = await asyncio.wait_for(call(tools, "write_file", path="out.txt", content="secret"), 5)
        assert outcome.is_error is True and "named pipe" in outcome.content
        assert os.read(reader, 100) == b""  # nothing was written into the pipe
    finally:
        os.close(reader)


async def test_read_file_streams_large_files_and_counts_their_lines(tools, root):
    with open(root / "big.log", "wb") as handle:
        handle.write(b"".join(b"line %d\r\n" % n for n in range(1, 300_001)))
    outcome = await call(tools, "read_file", path="big.log", start_line=299_999)
    assert outcome.content == "299999\tline 299999\n300000\tline 300000"
    head = await call(tools, "read_file", path="big.log", start_line=1, end_line=2)
    assert head.content == "     1\tline 1\n     2\tline 2\n… (299998 more lines; read on with start_line=3)"
    past = await call(tools, "read_file", path="big.log", start_line=300_001)
    assert past.is_error and past.content == "The file has 300000 lines; start_line 300001 is past its end."
