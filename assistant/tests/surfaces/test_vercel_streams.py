"""The run API's v5 and v4 streams read by the Vercel AI SDK's own clients, and useChat's chat with its
default transport, multi-turn, with AI SDK 5 and 6 (Node, the `ai` npm packages pinned in
assistant/tests/js/package-lock.json; `.ci/run` installs them with `npm ci`), from a real daphne process."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest
from django.core.management import call_command
from django.db import connection

from assistant.tests.surfaces.test_live_servers import seed_over_api
from config.testing.fake_anthropic import Reply, ToolUse, fake_anthropic_server
from config.testing.processes import database_url_for_children, require, running_server

# reset_sequences: as in test_openai_api_live.py, the module's server (sharing this database on
# PostgreSQL) keeps valid content-type ids across the flushes between tests.
pytestmark = pytest.mark.django_db(transaction=True, reset_sequences=True)

JS_DIR = Path(__file__).parents[1] / "js"
NODE = shutil.which("node")


@pytest.fixture(scope="module")
def served(tmp_path_factory, django_db_setup, django_db_blocker):
    """One server for the module (a real daphne process) and the fake model its agents use."""
    require(NODE is not None, "Node.js (Debian package `nodejs`)")
    require((JS_DIR / "node_modules" / "ai").is_dir(), "the `ai` npm packages (`npm ci` in assistant/tests/js)")
    with django_db_blocker.unblock():
        if connection.vendor == "postgresql":
            call_command("flush", interactive=False, reset_sequences=True, verbosity=0)
        database = database_url_for_children(tmp_path_factory.mktemp("vercel-streams"))
    with fake_anthropic_server() as fake:
        env = {"DATABASE_URL": database, "ANTHROPIC_MAX_RETRIES": "0", "OUTBOUND_ALLOWED_HOSTS": "127.0.0.1"}
        # The agent's tool comes from the test's ASGI application (see lookup_tool.py).
        with running_server(env, application="assistant.tests.lookup_tool:application") as base:
            yield base, fake


def node(script: str, *args: str, **env: str) -> dict:
    result = subprocess.run(
        [NODE, script, *args], cwd=JS_DIR, capture_output=True, text=True, timeout=120,
        env={**os.environ, "NO_COLOR": "1", **env},
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_the_ai_sdks_own_readers_read_the_v5_and_v4_streams(served):
    base, fake = served
    token, slug = seed_over_api(base, fake.base_url)
    tools = []
    for _ in range(3):  # v5, v4 through callChatApi, v4 through processDataStream
        tool = ToolUse("lookup", {"word": "salut"})
        tools.append(tool)
        fake.script(
            Reply(text=["Let me ", "look."], tool_uses=[tool], stop_reason="tool_use", input_tokens=21, output_tokens=8),
            Reply(text=["It means ", "hello."], input_tokens=34, output_tokens=6),
        )
    out = node("read_streams.mjs", base, token, slug, "What is salut?")

    # v5: the UI message readUIMessageStream assembled
    v5 = out["v5"]
    assert v5["errors"] == []
    message = v5["message"]
    assert message["role"] == "assistant" and message["id"].startswith("session-")
    kinds = [part["type"] for part in message["parts"]]
    assert kinds == ["step-start", "text", "dynamic-tool", "step-start", "text"]
    texts = [part for part in message["parts"] if part["type"] == "text"]
    assert [part["text"] for part in texts] == ["Let me look.", "It means hello."]
    assert all(part["state"] == "done" for part in texts)
    tool_part = message["parts"][2]
    assert tool_part == {"type": "dynamic-tool", "toolName": "lookup", "toolCallId": tools[0].id, "state": "output-available",
                         "input": {"word": "salut"}, "output": "salut means hello"} | {
        k: v for k, v in tool_part.items() if k not in {"type", "toolName", "toolCallId", "state", "input", "output"}
    }  # fmt: skip
    metadata = message["metadata"]
    assert metadata["status"] == "complete" and metadata["stopReason"] == "end_turn"
    assert metadata["usage"] == {"inputTokens": 55, "outputTokens": 14, "totalTokens": 69, "cachedInputTokens": 0}

    # v4: the message useChat's callChatApi built, with its finish reason and usage
    v4 = out["v4"]
    assert v4["finishReason"] == "stop"
    assert v4["usage"] == {"promptTokens": 55, "completionTokens": 14, "totalTokens": 69}
    assert v4["message"]["content"] == "Let me look.It means hello."
    invocations = v4["message"]["toolInvocations"]
    assert invocations == [{"state": "result", "step": 0, "toolCallId": tools[1].id, "toolName": "lookup",
                            "args": {"word": "salut"}, "result": "salut means hello"}]  # fmt: skip
    assert [part["type"] for part in v4["message"]["parts"]] == ["step-start", "text", "tool-invocation", "step-start", "text"]

    # v4, part by part through processDataStream
    assert out["v4Parts"]["header"] == "v1"
    parts = []  # text parts merged: deltas are coalesced in time, so their number varies
    for part in out["v4Parts"]["parts"]:
        if part["type"] == "text" and parts and parts[-1]["type"] == "text":
            parts[-1] = {"type": "text", "value": parts[-1]["value"] + part["value"]}
        else:
            parts.append(part)
    assert [p["type"] for p in parts] == [
        "start_step", "text", "tool_call", "tool_result", "finish_step", "start_step", "text", "finish_step", "finish_message",
    ]  # fmt: skip
    assert parts[1]["value"] == "Let me look." and parts[6]["value"] == "It means hello."
    assert parts[2]["value"] == {"toolCallId": tools[2].id, "toolName": "lookup", "args": {"word": "salut"}}
    assert parts[3]["value"] == {"toolCallId": tools[2].id, "result": "salut means hello"}
    assert parts[4]["value"] == {"finishReason": "tool-calls", "isContinued": False}
    assert parts[7]["value"] == {"finishReason": "stop", "isContinued": False}  # two model calls: usage only in d:
    assert parts[8]["value"] == {"finishReason": "stop", "usage": {"promptTokens": 55, "completionTokens": 14}}


@pytest.mark.parametrize("package", ["ai", "ai-v6"])  # AI SDK 5 and 6 (package.json)
def test_use_chat_works_unchanged_with_its_default_transport_multi_turn_included(served, package):
    """The `ai` package's chat (what useChat runs) with `DefaultChatTransport({api, headers})` and
    nothing else: its default request body and the v5 stream (AI SDK 6 reads the same UI-message
    stream), two turns in one session."""
    base, fake = served
    token, slug = seed_over_api(base, fake.base_url)
    fake.script(Reply(text=["Hello, ", "Alice."]), Reply(text=["You are ", "Alice."]))

    out = node("use_chat.mjs", base, token, slug, "Hi, I'm Alice", "Who am I?", AI_PACKAGE=package)

    assert out["errors"] == [] and out["status"] == "ready"
    messages = out["messages"]
    assert [m["role"] for m in messages] == ["user", "assistant", "user", "assistant"]
    texts = ["".join(p["text"] for p in m["parts"] if p["type"] == "text") for m in messages]
    assert texts == ["Hi, I'm Alice", "Hello, Alice.", "Who am I?", "You are Alice."]
    assert len(set(out["sessionIds"])) == 1 and len(out["sessionIds"]) == 2  # the chat's id named one session
    # The second request's model call had the first turn as history (from the session, not re-sent).
    assert [m["role"] for m in fake.requests[-1].body["messages"]] == ["user", "assistant", "user"]
    assert fake.requests[-1].body["messages"][0]["content"] == [{"type": "text", "text": "Hi, I'm Alice"}]
