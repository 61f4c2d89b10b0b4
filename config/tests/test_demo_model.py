"""The demo model: on its own (`python3 dev.py demo-model`), through Conduit's agent loop, and started with the
server by `python3 dev.py run --demo` (one command, stopped together). The real SDK reads its streams."""

from __future__ import annotations

import io
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request

import anthropic
import pytest
from django.conf import settings
from django.core.management import call_command

from config.testing.demo_model import answer
from config.testing.fake_anthropic import fake_anthropic_server
from config.testing.processes import database_url_for_children, free_port

LIST_DIRECTORY = {"name": "list_directory", "description": "List files.", "input_schema": {"type": "object"}}


def _client(base_url: str) -> anthropic.Anthropic:
    return anthropic.Anthropic(api_key="demo", base_url=base_url, max_retries=0)


def _user(text: str) -> dict:
    return {"role": "user", "content": [{"type": "text", "text": text}]}


def test_the_demo_model_runs_on_its_port_and_streams_clean_markdown(unused_tcp_port):
    process = subprocess.Popen(
        [sys.executable, "-m", "config.testing.demo_model", "--port", str(unused_tcp_port)],
        cwd=settings.BASE_DIR, stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        base_url = f"http://127.0.0.1:{unused_tcp_port}"
        assert process.stdout.readline().strip() == f"Demo model listening on {base_url}. Start Conduit against it with:"
        messages = [_user("Hi **there**\nbye")]
        with _client(base_url).messages.stream(model="any", max_tokens=100, messages=messages) as stream:
            deltas = list(stream.text_stream)
            final = stream.get_final_message()
        assert len(deltas) > 5  # streamed word by word
        text = "".join(deltas)
        assert text.startswith("You said:\n\n> Hi **there**\n> bye\n\nI am Conduit's demo model")
        assert text.count("**") == 2  # only the user's own, quoted: no stray markers of ours
        assert final.stop_reason == "end_turn" and final.model == "conduit-demo"
    finally:
        process.terminate()
        assert process.wait(timeout=10) == 0


def test_a_busy_port_gives_one_clear_line_and_no_traceback():
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = subprocess.run(
            [sys.executable, "-m", "config.testing.demo_model", "--port", str(port)],
            cwd=settings.BASE_DIR, capture_output=True, text=True, timeout=60,
        )  # fmt: skip
    assert result.returncode == 1
    assert result.stderr.strip() == (
        f"Port {port} is busy: start the demo model on another one (--port N, or 0 for any)."
    )


def test_asked_for_files_it_calls_the_workspace_tool_then_answers_from_the_result():
    with fake_anthropic_server() as fake:
        fake.responder = answer
        client = _client(fake.base_url)
        asked = [_user("Please list files")]
        first = client.messages.create(model="any", max_tokens=100, messages=asked, tools=[LIST_DIRECTORY])
        assert first.stop_reason == "tool_use"
        call = next(block for block in first.content if block.type == "tool_use")
        assert (call.name, call.input) == ("list_directory", {"path": "."})
        result = {"type": "tool_result", "tool_use_id": call.id, "content": "notes.txt\nsrc/"}
        history = [*asked, {"role": "assistant", "content": [b.model_dump() for b in first.content]}]
        second = client.messages.create(
            model="any", max_tokens=100, tools=[LIST_DIRECTORY],
            messages=[*history, {"role": "user", "content": [result]}],
        )
        assert second.stop_reason == "end_turn"
        assert "```text\nnotes.txt\nsrc/\n```" in second.content[0].text
        # An agent without workspace tools: it says which agent has them instead.
        no_tools = client.messages.create(model="any", max_tokens=100, messages=asked)
        assert no_tools.stop_reason == "end_turn" and "Code reviewer" in no_tools.content[0].text


@pytest.mark.django_db(transaction=True)
def test_the_cli_runs_a_tool_call_against_the_demo_model(settings, make_user, tmp_path):
    make_user(email="admin@example.com", is_staff=True, is_superuser=True)
    (tmp_path / "uploaded.csv").write_text("a,b\n")
    settings.ANTHROPIC_API_KEY = "demo"
    settings.ANTHROPIC_MAX_RETRIES = 0
    with fake_anthropic_server() as fake:
        fake.responder = answer
        settings.ANTHROPIC_BASE_URL = fake.base_url
        out = io.StringIO()
        call_command("run_orchestrator", "-m", "list files", "--workspace-dir", str(tmp_path), stdout=out)
    output = out.getvalue()
    assert '→ list_directory(path=".")' in output
    assert "The tool answered:" in output and "uploaded.csv" in output.split("The tool answered:")[1]


# --- python3 dev.py run --demo ------------------------------------------------------------------------------

RUN_WITH_DEMO = "import sys, dev; dev.PYTHON = sys.executable; dev.run_with_demo_model(sys.argv[1:])"


def _start_dev_run(tmp_path, port: int) -> subprocess.Popen:
    env = {
        **os.environ,
        "DATABASE_URL": database_url_for_children(tmp_path),
        "PYTHONUNBUFFERED": "1",
        "ANTHROPIC_API_KEY": "",
        "ANTHROPIC_BASE_URL": "",
    }
    return subprocess.Popen(
        [sys.executable, "-c", RUN_WITH_DEMO, "--port", str(port), "--workers", "1"],
        cwd=settings.BASE_DIR, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        start_new_session=True,  # its own process group: a terminal's Ctrl-C reaches the whole group
    )  # fmt: skip


def _read_until(process: subprocess.Popen, marker: str, timeout: float = 90) -> list[str]:
    lines, deadline = [], time.monotonic() + timeout
    while time.monotonic() < deadline:
        line = process.stdout.readline()
        if not line:
            raise AssertionError("exited early:\n" + "".join(lines))
        lines.append(line)
        if marker in line:
            return lines
    raise AssertionError("no " + marker + ":\n" + "".join(lines))


def _refused(base_url: str) -> bool:
    host, port = base_url.removeprefix("http://").split(":")
    try:
        socket.create_connection((host, int(port)), timeout=2).close()
    except OSError:
        return True
    return False


@pytest.mark.django_db(transaction=True)
def test_dev_run_demo_starts_the_model_and_the_server_and_ctrl_c_stops_both(tmp_path):
    port = free_port()
    process = _start_dev_run(tmp_path, port)
    try:
        lines = _read_until(process, "  Model:")
        model_line = lines[-1]
        assert "the demo model at http://127.0.0.1:" in model_line
        demo_url = model_line.split("the demo model at ")[1].split()[0]
        text = "".join(lines)
        assert f"Chat:      http://127.0.0.1:{port}/chat/" in text and f"http://127.0.0.1:{port}/api/docs/" in text
        with _client(demo_url).messages.stream(model="any", max_tokens=50, messages=[_user("hello")]) as stream:
            assert "".join(stream.text_stream).startswith("You said:")
        health = urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=30)
        assert health.status == 200
        # `dev.py manage` finds the running demo model (the CLI then needs no variables).
        found = subprocess.run(
            [sys.executable, "-c", "import dev; print(dev.running_demo_model())"],
            cwd=settings.BASE_DIR, capture_output=True, text=True, timeout=30,
        )  # fmt: skip
        assert found.stdout.strip() == demo_url
        os.killpg(process.pid, signal.SIGINT)  # Ctrl-C
        assert process.wait(timeout=30) == 0
        assert _refused(demo_url)
        assert not (settings.BASE_DIR / ".demo-model").exists()
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


@pytest.mark.django_db(transaction=True)
def test_dev_run_demo_on_a_busy_port_says_so_and_stops_the_model(tmp_path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        process = _start_dev_run(tmp_path, port)
        output, _ = process.communicate(timeout=90)
    assert process.returncode == 1
    assert f"Cannot listen on 127.0.0.1:{port}: the port is busy." in output
    assert "Traceback" not in output
    assert not (settings.BASE_DIR / ".demo-model").exists()
